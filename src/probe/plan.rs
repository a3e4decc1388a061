//! What the configuration is checked against the live cluster for (pure): every query a
//! release's checks would run, and each answer turned into a finding in the operator's
//! words, naming the release, the check and the fix.

use serde::{Deserialize, Serialize};

use crate::checks::provider::ProviderError;
use crate::config::{ReleasePolicy, Source, render_query};
use crate::release::ReleaseKey;

/// One thing to try for a release.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe {
    /// A PromQL expression (placeholders substituted) that should return series now.
    PromQL {
        /// The check it belongs to (`metrics_presence:gim`, `lag`, `custom:...`).
        check: String,
        /// The expression as it will run.
        query: String,
    },
    /// A SQL check's query, run read-only.
    Sql {
        /// The check it belongs to.
        check: String,
        /// The source.
        source: crate::config::SqlSource,
    },
}

/// The probes of one release's checks, in check order.
pub fn probes(key: &ReleaseKey, policy: &ReleasePolicy) -> Vec<Probe> {
    let promql = |check: String, q: &str| Probe::PromQL {
        check,
        query: render_query(q, key),
    };
    let mut out: Vec<Probe> = policy
        .metrics_presence
        .iter()
        .map(|p| promql(format!("metrics_presence:{}", p.name), &p.query))
        .collect();
    if let Some(lag) = &policy.lag {
        out.push(promql("lag".into(), &lag.query));
    }
    let thresholds = policy
        .dependencies
        .iter()
        .map(|t| ("dependency", t))
        .chain(policy.custom.iter().map(|t| ("custom", t)))
        .chain(
            policy
                .migration
                .iter()
                .filter_map(|m| m.sql.as_ref())
                .map(|t| ("migration", t)),
        );
    for (kind, t) in thresholds {
        let check = format!("{kind}:{}", t.name);
        out.push(match &t.source {
            Source::PromQL(q) => promql(check, q),
            Source::Sql(s) => Probe::Sql {
                check,
                source: s.clone(),
            },
        });
    }
    out
}

/// A series sampled this much less often than `prometheus.scrape_interval` says is a
/// problem (a little jitter is not).
pub const SPACING_TOLERANCE: f64 = 1.5;

/// The plain series selectors (`metric{labels}`) in a query, each once: the series whose
/// sampling the check depends on. A metric named without braces is not found (a query
/// without any selector found is not measured).
pub fn selectors(query: &str) -> Vec<String> {
    // A constant pattern: it compiles (the tests say so).
    static SELECTOR: std::sync::LazyLock<Option<regex::Regex>> = std::sync::LazyLock::new(|| {
        regex::Regex::new(r#"[a-zA-Z_:][a-zA-Z0-9_:]*\{(?:[^{}"]|"(?:[^"\\]|\\.)*")*\}"#).ok()
    });
    let Some(selector) = SELECTOR.as_ref() else {
        return Vec::new();
    };
    let mut out: Vec<String> = Vec::new();
    for m in selector.find_iter(query) {
        if !out.iter().any(|s| s == m.as_str()) {
            out.push(m.as_str().to_string());
        }
    }
    out
}

/// The window over which a selector's sample spacing is measured: ten scrape intervals,
/// at least a minute.
pub fn spacing_window(scrape: std::time::Duration) -> std::time::Duration {
    (scrape * 10).max(std::time::Duration::from_secs(60))
}

/// Why the series of `selector`, sampled every `spacing` seconds (its sparsest series),
/// cannot serve checks sized for `scrape`; `None` when they can.
pub fn spacing_problem(
    selector: &str,
    spacing: f64,
    scrape: std::time::Duration,
) -> Option<String> {
    let configured = scrape.as_secs_f64();
    if !spacing.is_finite() || spacing <= configured * SPACING_TOLERANCE {
        return None;
    }
    let actual = crate::units::human(std::time::Duration::from_secs_f64(spacing.round().max(1.0)));
    let configured = crate::units::human(scrape);
    Some(format!(
        "its series {selector} are sampled about every {actual} (the sparsest of them), but prometheus.scrape_interval says {configured}: the windows and for: of its checks were sized for {configured} and see too few samples; scrape that job every {configured}, or set prometheus.scrape_interval to {actual} and lengthen the windows"
    ))
}

/// What one probe found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    /// `namespace/name`.
    pub release: String,
    /// The check.
    pub check: String,
    /// What was tried (the query as it runs).
    pub tried: String,
    /// What is wrong and what to do, when something is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
    /// The query could not be tried (Prometheus or the database did not answer): a
    /// monitoring outage, not a fault of the configuration.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub untried: bool,
}

impl Finding {
    /// Whether nothing is wrong.
    pub fn ok(&self) -> bool {
        self.problem.is_none()
    }
}

/// The finding of a PromQL probe from its answer: how many series it returned now.
pub fn promql_finding(
    key: &ReleaseKey,
    check: &str,
    query: &str,
    answer: &Result<usize, ProviderError>,
) -> Finding {
    let problem = match answer {
        Ok(0) => Some(format!(
            "returns no series now: check the metric's name and labels ({{{{namespace}}}} became \"{}\", {{{{release}}}} became \"{}\") and that Prometheus scrapes its job; until it does, this check is inconclusive at every upgrade",
            key.namespace, key.name
        )),
        Ok(_) => None,
        Err(ProviderError::BadQuery(e)) => Some(format!(
            "Prometheus refuses the query ({e}): correct its PromQL in the configuration"
        )),
        Err(e) => Some(format!("cannot be tried: {e}")),
    };
    Finding {
        release: key.to_string(),
        check: check.to_string(),
        tried: query.to_string(),
        problem,
        untried: matches!(answer, Err(e) if !matches!(e, ProviderError::BadQuery(_))),
    }
}

/// The finding of a SQL probe from its answer: one number, no row (or NULL), or why not.
pub fn sql_finding(
    key: &ReleaseKey,
    check: &str,
    source: &crate::config::SqlSource,
    answer: &Result<Option<f64>, crate::gather::postgres::SqlError>,
) -> Finding {
    use crate::gather::postgres::SqlError;
    let untried = matches!(
        answer,
        Err(SqlError::Unreachable(_) | SqlError::Unavailable(_))
    );
    let problem = match answer {
        Ok(Some(_)) => None,
        Ok(None) => Some(format!(
            "returns no row (or NULL) now: the check reads no value from it; check the query and the database {}",
            source.database
        )),
        Err(e) => Some(format!(
            "{e}: fix the query, or databases.{} in the configuration",
            source.database
        )),
    };
    Finding {
        release: key.to_string(),
        check: check.to_string(),
        tried: format!("{} (database {})", source.query, source.database),
        problem,
        untried,
    }
}

/// The finding of the Kubernetes probe of a release's namespace: the kinds of objects its
/// checks read that cannot be listed (kind, why), as the identity that tried.
pub fn kube_finding(key: &ReleaseKey, unreadable: &[(&str, String)]) -> Finding {
    let problem = (!unreadable.is_empty()).then(|| {
        let kinds: Vec<String> = unreadable
            .iter()
            .map(|(kind, why)| format!("{kind} ({why})"))
            .collect();
        format!(
            "cannot list {} in namespace {}: the rollout, pod and job checks cannot see them; grant get, list and watch on them (the chart's Role does)",
            kinds.join(", "),
            key.namespace
        )
    });
    Finding {
        release: key.to_string(),
        check: "kubernetes".into(),
        tried: format!(
            "list deployments, statefulsets, daemonsets, replicasets, pods and jobs in {}",
            key.namespace
        ),
        problem,
        // The API server not answering is an outage, not a fault of the configuration.
        untried: !unreadable.is_empty() && unreadable.iter().all(|(_, why)| why != "forbidden"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(yaml: &str) -> (ReleaseKey, ReleasePolicy) {
        let key = ReleaseKey::new("gim", "gim");
        let config = crate::config::Config::parse(yaml, "t").unwrap();
        let policy = config.policy_for(&key);
        (key, policy)
    }

    #[test]
    fn every_query_of_a_release_is_probed_with_its_placeholders_filled() {
        let (key, p) = policy(
            "defaults:\n  metrics_presence:\n    - name: up\n      query: up{namespace=\"{{namespace}}\"}\n  custom:\n    - name: errors\n      query: rate(errors_total{release=\"{{release}}\"}[5m])\n      max: 1\n",
        );
        let probes = probes(&key, &p);
        assert_eq!(
            probes,
            [
                Probe::PromQL {
                    check: "metrics_presence:up".into(),
                    query: "up{namespace=\"gim\"}".into()
                },
                Probe::PromQL {
                    check: "custom:errors".into(),
                    query: "rate(errors_total{release=\"gim\"}[5m])".into()
                },
            ]
        );
    }

    #[test]
    fn the_series_a_query_reads_are_its_selectors() {
        assert_eq!(
            selectors(
                r#"max(gim_lag{namespace="gim", x=~"a}b"}) / sum(rate(errors_total{job="gim"}[5m])) + gim_lag{namespace="gim", x=~"a}b"}"#
            ),
            [
                r#"gim_lag{namespace="gim", x=~"a}b"}"#,
                r#"errors_total{job="gim"}"#
            ]
        );
        assert!(selectors("sum(up)").is_empty());
    }

    #[test]
    fn a_series_scraped_less_often_than_configured_is_named_with_both_intervals() {
        let scrape = std::time::Duration::from_secs(30);
        assert_eq!(spacing_problem("up{}", 30.0, scrape), None);
        assert_eq!(spacing_problem("up{}", 44.0, scrape), None, "jitter");
        assert_eq!(spacing_problem("up{}", f64::NAN, scrape), None);
        let words = spacing_problem("up{job=\"gim\"}", 120.0, scrape).unwrap();
        assert!(
            words.starts_with("its series up{job=\"gim\"} are sampled about every 2m"),
            "{words}"
        );
        assert!(
            words.contains("prometheus.scrape_interval says 30s"),
            "{words}"
        );
        assert_eq!(spacing_window(scrape), std::time::Duration::from_secs(300));
        assert_eq!(
            spacing_window(std::time::Duration::from_secs(1)),
            std::time::Duration::from_secs(60)
        );
    }

    #[test]
    fn each_answer_is_a_sentence_with_the_fix() {
        let key = ReleaseKey::new("gim", "gim");
        let none = promql_finding(&key, "lag", "q", &Ok(0));
        let words = none.problem.unwrap();
        assert!(words.starts_with("returns no series now"), "{words}");
        assert!(words.contains("{{namespace}} became \"gim\""), "{words}");
        assert!(promql_finding(&key, "lag", "q", &Ok(3)).ok());
        let bad = promql_finding(
            &key,
            "lag",
            "q(",
            &Err(ProviderError::BadQuery("unexpected end of input".into())),
        );
        assert!(
            bad.problem
                .unwrap()
                .contains("refuses the query (unexpected end of input)")
        );
        let down = promql_finding(
            &key,
            "lag",
            "q",
            &Err(ProviderError::Unavailable("connection refused".into())),
        );
        assert!(
            down.untried && !down.ok(),
            "an outage, not a configuration fault"
        );
        assert!(kube_finding(&key, &[]).ok());
        let refused = kube_finding(&key, &[("pods", "forbidden".into())]);
        assert!(!refused.untried);
        assert!(
            refused
                .problem
                .unwrap()
                .starts_with("cannot list pods (forbidden) in namespace gim")
        );
        assert!(kube_finding(&key, &[("pods", "timed out".into())]).untried);
    }
}
