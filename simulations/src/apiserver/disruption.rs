//! PodDisruptionBudgets: the `pods/eviction` subresource that honours them, and the status
//! the disruption controller keeps on them, so drains and voluntary disruptions meet the
//! same refusals as in a real cluster.
//!
//! Simplifications: a budget counts the pods its selector matches as the pods it expects
//! (the real controller asks their controllers' scale, which differs while a workload is
//! scaling), and its numbers are computed afresh at each eviction rather than read from
//! `status` (so no "still being processed" refusals). A pod that is not both Running and
//! Ready may always be evicted (the real default, `IfHealthyBudget`, refuses it while the
//! budget is not met; `AlwaysAllow` is what is modelled).

use std::sync::Mutex;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::core::{Selector, SelectorExt};
use serde_json::{Value, json};

use super::deletion::DeleteOptions;
use super::discovery::{POD_DISRUPTION_BUDGETS, PODS};
use super::error::{ApiError, StatusCause};
use super::selector::{ObjectSelector, labels_of};
use super::store::ObjectStore;

/// What the real server says when a budget refuses an eviction.
const BUDGET_REFUSAL: &str = "Cannot evict pod as it would violate the pod's disruption budget.";

/// What the real server says when several budgets cover one pod.
const SEVERAL_BUDGETS: &str = "This pod has more than one PodDisruptionBudget, which the \
                               eviction subresource does not support.";

/// A budget's numbers, as its `status` reports them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Budget {
    /// Pods the budget covers.
    pub expected_pods: i64,
    /// Covered pods that are Ready.
    pub current_healthy: i64,
    /// Ready pods the budget asks for.
    pub desired_healthy: i64,
    /// How many covered pods may be evicted now.
    pub disruptions_allowed: i64,
}

impl Budget {
    /// The numbers of budget `pdb` over the pods of its namespace, or why its spec cannot be
    /// read.
    pub fn of(pdb: &Value, pods: &[Value]) -> Result<Self, String> {
        let selector = selector_of(pdb);
        let covered: Vec<&Value> = pods
            .iter()
            .filter(|p| selector.as_ref().is_some_and(|s| covers(s, p)))
            .collect();
        let expected = count(covered.len());
        let healthy = count(covered.iter().filter(|p| is_healthy(p)).count());
        let spec = &pdb["spec"];
        let desired = if !spec["maxUnavailable"].is_null() {
            expected - scaled(&spec["maxUnavailable"], expected)?
        } else if !spec["minAvailable"].is_null() {
            scaled(&spec["minAvailable"], expected)?
        } else {
            0
        };
        let desired = desired.max(0);
        Ok(Budget {
            expected_pods: expected,
            current_healthy: healthy,
            desired_healthy: desired,
            disruptions_allowed: (healthy - desired).max(0),
        })
    }
}

/// Serialises evictions on one server, as the real server's optimistic update of the budget's
/// status does: two concurrent evictions cannot both spend the last allowed disruption.
#[derive(Debug, Default)]
pub struct Evictions {
    lock: Mutex<()>,
}

impl Evictions {
    /// `POST pods/{name}/eviction` with `body` (a policy/v1 or v1beta1 `Eviction`): deletes
    /// the pod unless the one budget covering it allows no disruption (429, naming it) or
    /// several budgets cover it (500). Answers the real server's `Success` status.
    pub fn evict(
        &self,
        store: &ObjectStore,
        namespace: &str,
        name: &str,
        body: &[u8],
    ) -> Result<Value, ApiError> {
        let options = eviction_options(body, name)?;
        // The lock guards no data, only the check-then-delete below.
        let _serial = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        let pod = store.get(&PODS, Some(namespace), name)?;
        if !budgets_ignore(&pod) {
            check_budgets(store, namespace, &pod)?;
        }
        store.delete_with(&PODS, Some(namespace), name, &options)?;
        tracing::debug!(namespace, pod = name, "pod evicted");
        refresh_disruption_budgets(store)?;
        Ok(json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"}))
    }
}

/// Writes every PodDisruptionBudget's `status` (observed generation, expected pods, current
/// and desired healthy, disruptions allowed and the `DisruptionAllowed` condition) from the
/// pods now stored, as the disruption controller would; a budget whose status is already
/// right is not written. The cluster's tick calls this; the server does after writes to pods
/// and budgets.
pub fn refresh_disruption_budgets(store: &ObjectStore) -> Result<(), ApiError> {
    let all = ObjectSelector::default();
    let (budgets, _) = store.list(&POD_DISRUPTION_BUDGETS, None, &all);
    let now = store.timestamp();
    for pdb in budgets {
        let (Some(namespace), Some(name)) = (
            pdb["metadata"]["namespace"].as_str(),
            pdb["metadata"]["name"].as_str(),
        ) else {
            continue;
        };
        let (pods, _) = store.list(&PODS, Some(namespace), &all);
        let budget = match Budget::of(&pdb, &pods) {
            Ok(budget) => budget,
            Err(why) => {
                tracing::warn!(namespace, name, %why, "pod disruption budget not evaluated");
                continue;
            }
        };
        let result = store.modify(&POD_DISRUPTION_BUDGETS, Some(namespace), name, |stored| {
            stored["status"] = status_of(stored, budget, &now);
        });
        match result {
            // Deleted meanwhile: nothing to report on.
            Ok(_) | Err(ApiError::NotFound(_)) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// The delete options of an eviction `body`, refused if it is not an `Eviction` of `name`.
fn eviction_options(body: &[u8], name: &str) -> Result<DeleteOptions, ApiError> {
    let mut eviction: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::BadRequest(format!("the Eviction body is not JSON: {e}")))?;
    match eviction["apiVersion"].as_str() {
        None | Some("policy/v1" | "policy/v1beta1") => {}
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "an Eviction is policy/v1 or policy/v1beta1, not {other}"
            )));
        }
    }
    if let Some(kind) = eviction["kind"].as_str().filter(|k| *k != "Eviction") {
        return Err(ApiError::BadRequest(format!(
            "the body is a {kind}, not an Eviction"
        )));
    }
    if let Some(named) = eviction["metadata"]["name"].as_str()
        && named != name
    {
        return Err(ApiError::BadRequest(
            "name in URL does not match name in Eviction object".into(),
        ));
    }
    DeleteOptions::from_value(eviction["deleteOptions"].take())
}

/// Refuses evicting `pod` if several budgets cover it, or if it is healthy and the one
/// budget that covers it allows no disruption now.
fn check_budgets(store: &ObjectStore, namespace: &str, pod: &Value) -> Result<(), ApiError> {
    let (budgets, _) = store.list(
        &POD_DISRUPTION_BUDGETS,
        Some(namespace),
        &ObjectSelector::default(),
    );
    let mut covering = budgets
        .iter()
        .filter(|pdb| selector_of(pdb).is_some_and(|s| covers(&s, pod)));
    let Some(pdb) = covering.next() else {
        return Ok(());
    };
    if covering.next().is_some() {
        return Err(ApiError::Internal(format!(
            "Internal error occurred: {SEVERAL_BUDGETS}"
        )));
    }
    if !is_healthy(pod) {
        return Ok(());
    }
    let (pods, _) = store.list(&PODS, Some(namespace), &ObjectSelector::default());
    let budget = Budget::of(pdb, &pods).map_err(ApiError::Internal)?;
    if budget.disruptions_allowed > 0 {
        return Ok(());
    }
    let name = pdb["metadata"]["name"].as_str().unwrap_or_default();
    let refusal = ApiError::TooManyRequests {
        message: BUDGET_REFUSAL.to_owned(),
        retry_after_seconds: 0,
    };
    Err(refusal.with_causes(vec![StatusCause {
        reason: "DisruptionBudget".into(),
        message: format!(
            "The disruption budget {name} needs {} healthy pods and has {} currently",
            budget.desired_healthy, budget.current_healthy
        ),
        field: String::new(),
    }]))
}

/// The status for `pdb` with numbers `budget`, keeping the condition's transition time when
/// its status stays.
fn status_of(pdb: &Value, budget: Budget, now: &str) -> Value {
    let allowed = budget.disruptions_allowed > 0;
    let (status, reason) = if allowed {
        ("True", "SufficientPods")
    } else {
        ("False", "InsufficientPods")
    };
    let generation = pdb["metadata"]["generation"].as_i64().unwrap_or(1);
    let previous = pdb["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["type"] == "DisruptionAllowed" && c["status"] == status);
    let since = previous.map_or(json!(now), |c| c["lastTransitionTime"].clone());
    json!({
        "observedGeneration": generation,
        "expectedPods": budget.expected_pods,
        "currentHealthy": budget.current_healthy,
        "desiredHealthy": budget.desired_healthy,
        "disruptionsAllowed": budget.disruptions_allowed,
        "conditions": [{
            "type": "DisruptionAllowed",
            "status": status,
            "reason": reason,
            "message": "",
            "observedGeneration": generation,
            "lastTransitionTime": since,
        }],
    })
}

/// The budget's selector; `None` for a missing, empty or unreadable one, which covers no pod
/// (as in the real server, so a stray budget never blocks a whole namespace).
fn selector_of(pdb: &Value) -> Option<Selector> {
    let selector: LabelSelector = serde_json::from_value(pdb["spec"]["selector"].clone()).ok()?;
    Selector::try_from(selector)
        .ok()
        .filter(|s| !s.selects_all())
}

fn covers(selector: &Selector, pod: &Value) -> bool {
    selector.matches(&labels_of(pod))
}

/// Not Running (pending or finished) or already being deleted: a pod whose eviction disrupts
/// nothing more, which no budget is even looked up for.
fn budgets_ignore(pod: &Value) -> bool {
    pod["status"]["phase"] != "Running" || !pod["metadata"]["deletionTimestamp"].is_null()
}

/// Running, Ready and not being deleted: a pod a budget counts as healthy.
fn is_healthy(pod: &Value) -> bool {
    pod["status"]["phase"] == "Running"
        && pod["metadata"]["deletionTimestamp"].is_null()
        && pod["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| c["type"] == "Ready" && c["status"] == "True")
}

/// An int-or-percent of `total`, a percentage rounded up, as the disruption controller
/// scales `minAvailable` and `maxUnavailable`.
fn scaled(value: &Value, total: i64) -> Result<i64, String> {
    if let Some(n) = value.as_i64() {
        return Ok(n);
    }
    let percent = value
        .as_str()
        .and_then(|s| s.strip_suffix('%'))
        .and_then(|p| p.parse::<i64>().ok())
        .ok_or_else(|| format!("{value} is neither an integer nor a percentage"))?;
    Ok((percent * total + 99).div_euclid(100))
}

fn count(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str, app: &str, ready: bool) -> Value {
        json!({
            "metadata": {"name": name, "labels": {"app": app}},
            "status": {"phase": "Running", "conditions": [
                {"type": "Ready", "status": if ready { "True" } else { "False" }},
            ]},
        })
    }

    fn pdb(spec: Value) -> Value {
        let mut spec = spec;
        spec["selector"] = json!({"matchLabels": {"app": "web"}});
        json!({"metadata": {"name": "web"}, "spec": spec})
    }

    #[test]
    fn budgets_count_covered_pods_and_round_percentages_up() {
        let pods = [
            pod("a", "web", true),
            pod("b", "web", true),
            pod("c", "web", false),
            pod("d", "db", true),
        ];
        let numbers = |spec: Value| Budget::of(&pdb(spec), &pods);
        assert_eq!(
            numbers(json!({"minAvailable": 2})),
            Ok(Budget {
                expected_pods: 3,
                current_healthy: 2,
                desired_healthy: 2,
                disruptions_allowed: 0
            })
        );
        let half = numbers(json!({"minAvailable": "50%"})).expect("percent");
        assert_eq!((half.desired_healthy, half.disruptions_allowed), (2, 0));
        let one_unavailable = numbers(json!({"maxUnavailable": 1})).expect("int");
        assert_eq!(one_unavailable.desired_healthy, 2);
        let third = numbers(json!({"maxUnavailable": "34%"})).expect("percent");
        assert_eq!((third.desired_healthy, third.disruptions_allowed), (1, 1));
        assert!(numbers(json!({"minAvailable": "half"})).is_err());
        let empty =
            json!({"metadata": {"name": "all"}, "spec": {"selector": {}, "minAvailable": 1}});
        let none = Budget::of(&empty, &pods).expect("empty selector");
        assert_eq!((none.expected_pods, none.disruptions_allowed), (0, 0));
    }

    #[test]
    fn status_keeps_the_transition_time_while_the_condition_holds() {
        let budget = Budget {
            expected_pods: 3,
            current_healthy: 3,
            desired_healthy: 2,
            disruptions_allowed: 1,
        };
        let mut stored = pdb(json!({"minAvailable": 2}));
        stored["status"] = status_of(&stored, budget, "t1");
        assert_eq!(
            stored["status"]["conditions"][0]["reason"],
            "SufficientPods"
        );
        let again = status_of(&stored, budget, "t2");
        assert_eq!(again["conditions"][0]["lastTransitionTime"], "t1");
        let blocked = Budget {
            disruptions_allowed: 0,
            ..budget
        };
        let changed = status_of(&stored, blocked, "t3");
        assert_eq!(changed["conditions"][0]["status"], "False");
        assert_eq!(changed["conditions"][0]["lastTransitionTime"], "t3");
    }

    #[test]
    fn eviction_bodies_of_either_policy_version_name_their_pod() {
        let body = |v: Value| serde_json::to_vec(&v).expect("serialises");
        let v1beta1 = body(json!({"apiVersion": "policy/v1beta1", "kind": "Eviction",
            "metadata": {"name": "web-0"}, "deleteOptions": {"preconditions": {"uid": "u"}}}));
        let options = eviction_options(&v1beta1, "web-0").expect("accepted");
        assert_eq!(options.preconditions.uid.as_deref(), Some("u"));
        assert!(
            eviction_options(&v1beta1, "web-1").is_err(),
            "another pod's name"
        );
        let wrong = body(json!({"apiVersion": "v1", "kind": "Eviction"}));
        assert!(eviction_options(&wrong, "web-0").is_err());
        assert!(
            eviction_options(b"{}", "web-0").is_ok(),
            "a bare body evicts by the URL"
        );
    }
}
