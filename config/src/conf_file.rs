//! A file of a CNI config directory, as the caller read it. Directory
//! listings are passed to the pure logic of this crate as slices of these.

/// One file of a config directory (the CNI conf dir or the Multus conf dir).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfFile {
    /// File name (no directory part), e.g. `10-macvlan.conf`.
    pub name: String,
    /// The file's contents.
    pub bytes: Vec<u8>,
}

impl ConfFile {
    /// A file from its name and contents.
    pub fn new(name: impl Into<String>, bytes: impl Into<Vec<u8>>) -> Self {
        Self {
            name: name.into(),
            bytes: bytes.into(),
        }
    }
}
