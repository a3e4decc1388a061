//! What `check --wait` shows while it waits, on stderr (stdout keeps the result): on a
//! terminal a spinner with the verdict, the bake time left and the checks still pending;
//! elsewhere one line per verdict change; nothing with `--quiet`.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressStyle};
use jiff::Timestamp;

use crate::checks::Outcome;
use crate::units::{between, human};
use crate::verdict::Report;

/// How the progress is shown.
#[derive(Debug)]
pub enum Progress {
    /// A spinner rewritten in place.
    Spinner(ProgressBar),
    /// A line per verdict change; the last verdict shown.
    Lines(Option<String>),
    /// Nothing.
    Quiet,
}

/// The words of one round: the verdict, the bake time left, the checks still pending.
pub fn words(report: &Report, now: Timestamp) -> String {
    let mut out = format!(
        "{} revision {}: {}",
        report.release,
        report.revision,
        report.verdict.as_str()
    );
    if now < report.bake_ends {
        out.push_str(&format!(
            ", bake ends in {}",
            human(between(now, report.bake_ends))
        ));
    }
    let pending: Vec<String> = report
        .results
        .iter()
        .filter(|r| matches!(r.outcome, Outcome::Pending | Outcome::Inconclusive))
        .map(|r| r.check.to_string())
        .collect();
    if !pending.is_empty() {
        out.push_str(&format!(", still pending: {}", pending.join(", ")));
    }
    out
}

impl Progress {
    /// A spinner on a terminal, lines elsewhere, nothing when `quiet`.
    pub fn new(quiet: bool) -> Self {
        if quiet {
            Self::Quiet
        } else if std::io::stderr().is_terminal() {
            let bar = ProgressBar::new_spinner();
            bar.set_style(
                ProgressStyle::with_template("{spinner} {msg} ({elapsed})")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            bar.enable_steady_tick(std::time::Duration::from_millis(120));
            Self::Spinner(bar)
        } else {
            Self::Lines(None)
        }
    }

    /// Shows one round.
    pub fn round(&mut self, report: &Report) {
        match self {
            Self::Spinner(bar) => bar.set_message(words(report, Timestamp::now())),
            Self::Lines(last) => {
                let verdict = report.verdict.as_str().to_string();
                if last.as_deref() != Some(verdict.as_str()) {
                    eprintln!(
                        "{} {}",
                        Timestamp::now().strftime("%H:%M:%S"),
                        words(report, Timestamp::now())
                    );
                    *last = Some(verdict);
                }
            }
            Self::Quiet => {}
        }
    }

    /// Clears the spinner before the result is printed.
    pub fn finish(&self) {
        if let Self::Spinner(bar) = self {
            bar.finish_and_clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::CheckResult;
    use crate::test_support::report;
    use crate::verdict::Verdict;

    #[test]
    fn a_round_says_the_verdict_the_bake_time_left_and_what_is_pending() {
        let mut r = report(2, Verdict::Progressing, 1, 10);
        r.results = vec![
            CheckResult::new("pending_pods", Outcome::Pending, "1 pod starting"),
            CheckResult::new("lag", Outcome::Pass, "steady"),
            CheckResult::new("metrics_presence", Outcome::Inconclusive, "no answer"),
        ];
        assert_eq!(
            words(&r, Timestamp::from_second(4).unwrap()),
            "ns/app revision 2: progressing, bake ends in 6s, still pending: pending_pods, metrics_presence"
        );
        let done = report(2, Verdict::Healthy, 11, 10);
        assert_eq!(
            words(&done, Timestamp::from_second(11).unwrap()),
            "ns/app revision 2: healthy"
        );
    }
}
