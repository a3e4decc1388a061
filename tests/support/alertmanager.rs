//! Alertmanager's v2 API, read and written by tests.

use super::stack::stack;

/// POSTs alerts (a JSON array in the v2 format) to the stack's Alertmanager.
pub async fn post(alerts: &serde_json::Value) {
    let resp = reqwest::Client::new()
        .post(format!("{}/api/v2/alerts", stack().alertmanager_url))
        .json(alerts)
        .send()
        .await
        .expect("POST /api/v2/alerts");
    assert!(
        resp.status().is_success(),
        "Alertmanager refused the alerts: {}",
        resp.status()
    );
}

/// The alerts Alertmanager currently holds whose labels include every `(name, value)`.
pub async fn alerts(labels: &[(&str, &str)]) -> Vec<serde_json::Value> {
    let all: Vec<serde_json::Value> = reqwest::Client::new()
        .get(format!("{}/api/v2/alerts", stack().alertmanager_url))
        .send()
        .await
        .expect("GET /api/v2/alerts")
        .json()
        .await
        .expect("alerts are JSON");
    all.into_iter()
        .filter(|a| labels.iter().all(|(k, v)| a["labels"][*k] == *v))
        .collect()
}

/// Waits (up to `within`) for Alertmanager to hold the alert `alertname` about namespace
/// `namespace`, and returns it.
pub async fn fired(
    within: std::time::Duration,
    namespace: &str,
    alertname: &str,
) -> serde_json::Value {
    super::wait::until(within, alertname, || async {
        alerts(&[("namespace", namespace), ("alertname", alertname)])
            .await
            .into_iter()
            .next()
    })
    .await
}
