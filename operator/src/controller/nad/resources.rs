//! The device resources the nodes advertise in `status.allocatable`, and
//! the NAD resource no node advertises.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::ResourceExt;
use kube::runtime::watcher;

/// Whether a quantity (`"1"`, `"2k"`, `"500m"`, `"1e3"`) is above 0; an
/// unparsable one is not.
pub fn quantity_above_zero(quantity: &Quantity) -> bool {
    let q = quantity.0.trim();
    let end = q
        .find(|c: char| !(c.is_ascii_digit() || matches!(c, '.' | '+' | '-')))
        .unwrap_or(q.len());
    q[..end].parse::<f64>().is_ok_and(|n| n > 0.0)
}

/// The resources `node` advertises in `status.allocatable` with a quantity
/// above 0 (not `capacity`: a stopped device plugin leaves its capacity
/// with 0 allocatable).
pub fn advertised_by(node: &Node) -> BTreeSet<String> {
    node.status
        .as_ref()
        .and_then(|s| s.allocatable.as_ref())
        .map(|alloc| {
            alloc
                .iter()
                .filter(|(_, q)| quantity_above_zero(q))
                .map(|(name, _)| name.clone())
                .collect()
        })
        .unwrap_or_default()
}

/// The resource a NAD names that no node advertises: none without a
/// resource, and none while the nodes are not listed (`advertised` is
/// `None`), so an unfilled cache gives no false warning.
pub fn unadvertised<'a>(
    resource: Option<&'a str>,
    advertised: Option<&BTreeSet<String>>,
) -> Option<&'a str> {
    let resource = resource?;
    (!advertised?.contains(resource)).then_some(resource)
}

/// Follows a Node watch and publishes the union of the resources the nodes
/// advertise ([`advertised_by`]): first when the initial list is complete,
/// then whenever it changes. Only each node's resource names are kept.
pub async fn follow_advertised<S>(stream: S, publish: impl Fn(Arc<BTreeSet<String>>))
where
    S: Stream<Item = Result<watcher::Event<Node>, watcher::Error>>,
{
    let mut stream = std::pin::pin!(stream);
    let mut nodes: HashMap<String, BTreeSet<String>> = HashMap::new();
    let mut relist: Option<HashMap<String, BTreeSet<String>>> = None;
    let mut listed = false;
    let mut last: Option<Arc<BTreeSet<String>>> = None;
    while let Some(event) = stream.next().await {
        let changed = match event {
            Ok(watcher::Event::Init) => {
                relist = Some(HashMap::new());
                false
            }
            Ok(watcher::Event::InitApply(node)) => {
                if let Some(r) = relist.as_mut() {
                    r.insert(node.name_any(), advertised_by(&node));
                }
                false
            }
            Ok(watcher::Event::InitDone) => {
                if let Some(r) = relist.take() {
                    nodes = r;
                }
                listed = true;
                true
            }
            Ok(watcher::Event::Apply(node)) => {
                let now = advertised_by(&node);
                nodes.insert(node.name_any(), now.clone()).as_ref() != Some(&now)
            }
            Ok(watcher::Event::Delete(node)) => nodes.remove(&node.name_any()).is_some(),
            Err(e) => {
                tracing::warn!(error = %e, "node watch (allocatable resources) failed; retrying");
                false
            }
        };
        if changed && listed {
            let union: BTreeSet<String> = nodes.values().flatten().cloned().collect();
            if last.as_deref() != Some(&union) {
                let union = Arc::new(union);
                last = Some(union.clone());
                publish(union);
            }
        }
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use std::sync::Mutex;

    pub(in crate::controller::nad) fn node_with(
        name: &str,
        capacity: &[(&str, &str)],
        allocatable: &[(&str, &str)],
    ) -> Node {
        let map = |list: &[(&str, &str)]| {
            Some(
                list.iter()
                    .map(|(k, v)| ((*k).to_owned(), Quantity((*v).to_owned())))
                    .collect(),
            )
        };
        let mut node = Node::default();
        node.metadata.name = Some(name.to_owned());
        node.status = Some(k8s_openapi::api::core::v1::NodeStatus {
            capacity: map(capacity),
            allocatable: map(allocatable),
            ..Default::default()
        });
        node
    }

    #[test]
    fn quantities_above_zero() {
        for (q, above) in [
            ("0", false),
            ("1", true),
            ("2k", true),
            ("0k", false),
            ("500m", true),
            ("1e3", true),
            ("-1", false),
            ("", false),
            ("x", false),
        ] {
            assert_eq!(quantity_above_zero(&Quantity(q.to_owned())), above, "{q:?}");
        }
    }

    #[tokio::test]
    async fn advertised_resources_follow_the_node_watch() {
        const R: &str = "example.com/nic";
        let with = node_with("n1", &[(R, "2")], &[(R, "2")]);
        let stopped = node_with("n1", &[(R, "2")], &[(R, "0")]);
        let events = futures::stream::iter(vec![
            Ok(watcher::Event::Init),
            Ok(watcher::Event::InitApply(with.clone())),
            Ok(watcher::Event::InitApply(node_with("n2", &[], &[]))),
            Ok(watcher::Event::InitDone),
            // Same resources: nothing published.
            Ok(watcher::Event::Apply(with.clone())),
            Ok(watcher::Event::Apply(stopped)),
            Ok(watcher::Event::Apply(with.clone())),
            Ok(watcher::Event::Delete(with)),
        ]);
        let seen = Mutex::new(Vec::new());
        follow_advertised(events, |a| seen.lock().unwrap().push(a)).await;
        let seen = seen.into_inner().unwrap();
        let sets: Vec<Vec<&str>> = seen
            .iter()
            .map(|s| s.iter().map(String::as_str).collect())
            .collect();
        assert_eq!(sets, [vec![R], vec![], vec![R], vec![]]);
    }
}
