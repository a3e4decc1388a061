//! Which emails to send (pure): one per change of a release's state worth telling (failed,
//! broken after its bake, inconclusive for longer than `notifications.inconclusive_after`, degraded at the end of
//! its bake, stuck pending, unreadable, and healthy again after one of those), never one per
//! re-send. Messages are rendered from templates (minijinja; the HTML
//! one auto-escaped): subject with release, revision and verdict; body with the checks
//! table and the exact command.

use std::collections::BTreeMap;

use minijinja::{Environment, context};
use serde::Serialize;

use super::names::Links;
use crate::checks::{Bound, Outcome};
use crate::records::action::{ActionKind, Phase};
use crate::release::ReleaseKey;
use crate::remediation::automation::Automation;
use crate::state::{Notice, NoticeKind, ProblemKind, ReleaseView};
use crate::units::num;
use crate::verdict::{RecommendedAction, Verdict};

/// A state worth an email.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MailState {
    Failed,
    RegressedAfterBake,
    Inconclusive,
    Degraded,
    Healthy,
    Stuck,
    Unreadable,
    RolledBack,
    ActionFailed,
}

impl MailState {
    const ALL: [MailState; 9] = [
        Self::Failed,
        Self::RegressedAfterBake,
        Self::Inconclusive,
        Self::Degraded,
        Self::Healthy,
        Self::Stuck,
        Self::Unreadable,
        Self::RolledBack,
        Self::ActionFailed,
    ];

    /// Its word in the confirmations of sent mail.
    fn as_str(self) -> &'static str {
        match self {
            Self::Failed => "failed",
            Self::RegressedAfterBake => "regressed_after_bake",
            Self::Inconclusive => "inconclusive",
            Self::Degraded => "degraded",
            Self::Healthy => "healthy",
            Self::Stuck => "stuck",
            Self::Unreadable => "unreadable",
            Self::RolledBack => "rolled_back",
            Self::ActionFailed => "action_failed",
        }
    }

    fn of(view: &ReleaseView) -> Option<Self> {
        if let Some(kind) = view.problem_kind() {
            return Some(match kind {
                ProblemKind::StuckPending => Self::Stuck,
                ProblemKind::Unreadable => Self::Unreadable,
            });
        }
        if let Some(r) = view.automation.as_ref().and_then(|a| a.record.as_ref()) {
            match r.phase {
                Phase::Verified
                    if r.action == ActionKind::Rollback
                        && r.new_revision == Some(view.revision) =>
                {
                    return Some(Self::RolledBack);
                }
                Phase::Failed | Phase::Interrupted | Phase::VerificationFailed => {
                    return Some(Self::ActionFailed);
                }
                _ => {}
            }
        }
        if view.after_bake.as_ref().is_some_and(|a| a.regressed()) {
            return Some(Self::RegressedAfterBake);
        }
        let j = view.judgement.as_ref()?;
        match j.verdict {
            Verdict::Failed => Some(Self::Failed),
            Verdict::Inconclusive if j.overdue => Some(Self::Inconclusive),
            Verdict::Degraded if j.is_final => Some(Self::Degraded),
            Verdict::Healthy if j.is_final => Some(Self::Healthy),
            _ => None,
        }
    }

    fn headline(self) -> &'static str {
        match self {
            Self::Failed => "failed",
            Self::RegressedAfterBake => {
                "broke after its bake (alerted; upgrade-guard does not act on it automatically)"
            }
            Self::Inconclusive => "inconclusive for too long: cannot be judged",
            Self::Degraded => "degraded",
            Self::Healthy => "healthy",
            Self::Stuck => "stuck pending",
            Self::Unreadable => "unreadable",
            Self::RolledBack => "rolled back automatically, rollback verified",
            Self::ActionFailed => "automatic action failed",
        }
    }
}

/// What a sent message told, recorded once the SMTP server accepted it (see
/// `records::mailed`): the key and the value of its confirmation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Confirmation {
    /// One per release, or per release and notice kind.
    pub key: String,
    /// What was told (JSON).
    pub value: String,
}

/// What a confirmation says, as written.
#[derive(Debug, Serialize, serde::Deserialize)]
struct Told {
    namespace: String,
    name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    revision: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    state: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    notice: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    at: Option<jiff::Timestamp>,
}

impl Told {
    fn confirmation(&self, key: String) -> Confirmation {
        Confirmation {
            key,
            value: serde_json::to_string(self).unwrap_or_default(),
        }
    }
}

/// One message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mail {
    /// The release (for logs, and with `revision` the thread).
    pub release: ReleaseKey,
    /// The revision it is about: every mail about one revision is one thread.
    pub revision: u32,
    /// What to record once it is sent.
    pub confirm: Option<Confirmation>,
    /// Subject line.
    pub subject: String,
    /// Plain-text part.
    pub text: String,
    /// HTML part.
    pub html: String,
    /// Recipients instead of `notifications.email.to` (the release's route).
    pub to: Option<Vec<String>>,
    /// Why the operator's template did not render (the built-in one was used).
    pub template_error: Option<String>,
}

impl Mail {
    /// The `Message-ID` every mail about this revision refers to (`In-Reply-To`,
    /// `References`), so that mail readers show them as one thread; `domain` is the
    /// sender's.
    pub fn thread_root(&self, domain: &str) -> String {
        format!(
            "<upgrade-guard.{}.{}.r{}@{domain}>",
            self.release.namespace, self.release.name, self.revision
        )
    }

    /// The mail naming the cluster it is about (`cluster` is a plain name, checked with
    /// the configuration): in the subject's tag and first in both parts.
    pub fn in_cluster(mut self, cluster: &str) -> Self {
        if let Some(rest) = self.subject.strip_prefix("[upgrade-guard] ") {
            self.subject = format!("[upgrade-guard {cluster}] {rest}");
        }
        self.text = format!("Cluster: {cluster}\n\n{}", self.text);
        self.html = format!("<p>Cluster: <b>{cluster}</b></p>\n{}", self.html);
        self
    }
}

#[derive(Serialize)]
struct CheckRow {
    check: String,
    outcome: &'static str,
    measure: String,
    summary: String,
}

/// A release's state worth telling (see [`Changebook`]): its name and its headline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct News(MailState);

impl News {
    /// `failed`, `healthy`, `rolled_back`, ...
    pub fn as_str(self) -> &'static str {
        self.0.as_str()
    }

    /// The words of a subject line: "failed", "stuck pending", ...
    pub fn headline(self) -> &'static str {
        self.0.headline()
    }
}

/// What was told of each release (revision and state), so that each change is told once,
/// never once per round or re-send; healthy is news only after something went wrong. The
/// mails and the webhooks each keep one.
#[derive(Debug, Default)]
pub struct Changebook {
    told: BTreeMap<ReleaseKey, (u32, MailState)>,
}

impl Changebook {
    /// The views whose state changed since last told, with their news; releases no longer
    /// shown are forgotten.
    pub fn changes<'a>(
        &mut self,
        views: impl Iterator<Item = &'a ReleaseView>,
    ) -> Vec<(&'a ReleaseView, News)> {
        let mut out = Vec::new();
        let mut seen = Vec::new();
        for view in views {
            seen.push(view.release.clone());
            let Some(state) = MailState::of(view) else {
                continue;
            };
            let before = self.told.get(&view.release).copied();
            if before == Some((view.revision, state)) {
                continue;
            }
            self.told
                .insert(view.release.clone(), (view.revision, state));
            let recovery = before.is_some_and(|(_, s)| s != MailState::Healthy);
            if state == MailState::Healthy && !recovery {
                continue;
            }
            out.push((view, News(state)));
        }
        self.told.retain(|k, _| seen.contains(k));
        out
    }

    /// Takes what the views state now as told (a replica that starts telling).
    pub fn seen<'a>(&mut self, views: impl Iterator<Item = &'a ReleaseView>) {
        let _ = self.changes(views);
    }
}

/// The states already told, per release.
pub struct Mailbook {
    told: Changebook,
    /// Notices already mailed: (release, kind, when noticed).
    told_notices: std::collections::BTreeSet<(ReleaseKey, NoticeKind, jiff::Timestamp)>,
    env: Environment<'static>,
    /// The operator's templates (`notifications.email.templates_dir`), tried first.
    custom: Option<Environment<'static>>,
}

/// The templates an operator gives instead of the built-in ones (either may be missing).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Templates {
    /// `email.txt`.
    pub text: Option<String>,
    /// `email.html` (auto-escaped).
    pub html: Option<String>,
}

impl Default for Mailbook {
    fn default() -> Self {
        let mut env = Environment::new();
        // Built-in templates: a syntax error is a bug caught by the tests.
        let _ = env.add_template("email.txt", include_str!("templates/email.txt"));
        let _ = env.add_template("email.html", include_str!("templates/email.html"));
        Self {
            told: Changebook::default(),
            told_notices: Default::default(),
            env,
            custom: None,
        }
    }
}

impl Mailbook {
    /// A mailbook rendering with the operator's templates where given, the built-in ones
    /// otherwise. A template that does not parse is refused, with its name and line.
    pub fn with_templates(templates: &Templates) -> Result<Self, minijinja::Error> {
        let mut book = Self::default();
        let mut custom = Environment::new();
        let mut any = false;
        for (name, source) in [
            ("email.txt", &templates.text),
            ("email.html", &templates.html),
        ] {
            if let Some(source) = source {
                custom.add_template_owned(name, source.clone())?;
                any = true;
            }
        }
        book.custom = any.then_some(custom);
        Ok(book)
    }

    /// One part of a message: the operator's template when there is one and it renders,
    /// else the built-in one (and why the operator's did not render).
    fn part(
        &self,
        name: &str,
        ctx: &minijinja::Value,
        failed: &mut Option<String>,
    ) -> Result<String, minijinja::Error> {
        if let Some(custom) = &self.custom
            && let Ok(template) = custom.get_template(name)
        {
            match template.render(ctx) {
                Ok(out) => return Ok(out),
                Err(e) => *failed = Some(format!("{name}: {e:#}")),
            }
        }
        self.env.get_template(name)?.render(ctx)
    }

    /// Takes what was confirmed sent (by any replica, before any restart) as told, so
    /// only what nobody confirmed is sent. Entries that do not parse are ignored.
    pub fn seed(&mut self, confirmed: &BTreeMap<String, String>) {
        for value in confirmed.values() {
            let Ok(t) = serde_json::from_str::<Told>(value) else {
                continue;
            };
            let release = ReleaseKey::new(&t.namespace, &t.name);
            if let (Some(revision), Some(state)) = (t.revision, t.state.as_deref())
                && let Some(state) = MailState::ALL.into_iter().find(|s| s.as_str() == state)
            {
                self.told.told.insert(release.clone(), (revision, state));
            }
            if let (Some(kind), Some(at)) = (t.notice.as_deref(), t.at)
                && let Some(kind) = [NoticeKind::Uninstalled, NoticeKind::ExportViews]
                    .into_iter()
                    .find(|k| k.as_str() == kind)
            {
                self.told_notices.insert((release, kind, at));
            }
        }
    }

    /// The messages the current state calls for: one per change since last told.
    pub fn changes<'a>(
        &mut self,
        views: impl Iterator<Item = &'a ReleaseView>,
        links: &Links,
    ) -> Vec<Result<Mail, minijinja::Error>> {
        self.told
            .changes(views)
            .into_iter()
            .map(|(view, news)| self.render(view, news.0, links))
            .collect()
    }

    /// One message per notice, once.
    pub fn notices(
        &mut self,
        notices: &[Notice],
        links: &Links,
    ) -> Vec<Result<Mail, minijinja::Error>> {
        let mut out = Vec::new();
        for n in notices {
            if !self.told_notices.insert((n.release.clone(), n.kind, n.at)) {
                continue;
            }
            let headline = match n.kind {
                NoticeKind::Uninstalled => "uninstalled",
                NoticeKind::ExportViews => "update the export views",
            };
            let ctx = context! {
                release => n.release.to_string(),
                revision => n.revision,
                headline => headline,
                problem => n.words.clone(),
                command => n.command.clone(),
                dashboard => links.dashboard(&n.release),
                api => links.generator(&n.release),
            };
            let mut failed = None;
            let mut render = || -> Result<Mail, minijinja::Error> {
                Ok(Mail {
                    release: n.release.clone(),
                    revision: n.revision,
                    confirm: Some(
                        Told {
                            namespace: n.release.namespace.to_string(),
                            name: n.release.name.to_string(),
                            revision: None,
                            state: None,
                            notice: Some(n.kind.as_str().to_string()),
                            at: Some(n.at),
                        }
                        .confirmation(format!(
                            "notice.{}.{}.{}",
                            n.kind.as_str(),
                            n.release.namespace,
                            n.release.name
                        )),
                    ),
                    subject: format!(
                        "[upgrade-guard] {} revision {}: {headline}",
                        n.release, n.revision
                    ),
                    text: self.part("email.txt", &ctx, &mut failed)?,
                    html: self.part("email.html", &ctx, &mut failed)?,
                    to: None,
                    template_error: failed.clone(),
                })
            };
            out.push(render());
        }
        let live: std::collections::BTreeSet<_> = notices
            .iter()
            .map(|n| (n.release.clone(), n.kind, n.at))
            .collect();
        self.told_notices.retain(|k| live.contains(k));
        out
    }

    fn render(
        &self,
        view: &ReleaseView,
        state: MailState,
        links: &Links,
    ) -> Result<Mail, minijinja::Error> {
        let j = match state {
            MailState::RegressedAfterBake => view.after_bake.as_ref().map(|a| &a.judgement),
            _ => view.judgement.as_ref(),
        };
        let checks: Vec<CheckRow> = j
            .map(|j| {
                j.results
                    .iter()
                    .filter(|r| r.outcome != Outcome::Pass || state == MailState::Healthy)
                    .map(|r| CheckRow {
                        check: r.check.to_string(),
                        outcome: r.outcome.as_str(),
                        measure: match (r.value, r.threshold) {
                            (Some(v), Some(t)) => format!(
                                "{} ({} {})",
                                num(v),
                                match t.bound {
                                    Bound::Min => ">=",
                                    Bound::Max => "<=",
                                },
                                num(t.value)
                            ),
                            (Some(v), None) => num(v),
                            _ => String::new(),
                        },
                        summary: r.summary.clone(),
                    })
                    .collect()
            })
            .unwrap_or_default();
        let action = j
            .map(|j| &j.action)
            .filter(|a| **a != RecommendedAction::None);
        let command = action.and_then(|a| match a {
            RecommendedAction::Rollback { command, .. }
            | RecommendedAction::RestartPod { command }
            | RecommendedAction::FixHook { command, .. } => Some(command.clone()),
            _ => None,
        });
        let ctx = context! {
            release => view.release.to_string(),
            revision => view.revision,
            headline => state.headline(),
            chart => view.chart.as_ref().map(|c| format!("{}-{}", c.name, c.version)),
            app => view.chart.as_ref().and_then(|c| c.app_version.clone()),
            chart_before => view.previous_chart.as_ref().map(|c| format!("{}-{}", c.name, c.version)),
            app_before => view.previous_chart.as_ref().and_then(|c| c.app_version.clone()),
            started => view.started.map(|t| t.strftime("%Y-%m-%d %H:%M:%S UTC").to_string()),
            problem => view.problem.clone(),
            action => action.map(RecommendedAction::words),
            automatic => view.automation.as_deref().and_then(Automation::words),
            command => command,
            checks => checks,
            dashboard => links.dashboard(&view.release),
            api => links.generator(&view.release),
        };
        let mut failed = None;
        Ok(Mail {
            release: view.release.clone(),
            revision: view.revision,
            confirm: Some(
                Told {
                    namespace: view.release.namespace.to_string(),
                    name: view.release.name.to_string(),
                    revision: Some(view.revision),
                    state: Some(state.as_str().to_string()),
                    notice: None,
                    at: None,
                }
                .confirmation(format!(
                    "mail.{}.{}",
                    view.release.namespace, view.release.name
                )),
            ),
            subject: format!(
                "[upgrade-guard] {} revision {}: {}",
                view.release,
                view.revision,
                state.headline()
            ),
            text: self.part("email.txt", &ctx, &mut failed)?,
            html: self.part("email.html", &ctx, &mut failed)?,
            to: None,
            template_error: failed,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::{CheckResult, Threshold};
    use crate::release::ReleaseStatus;
    use crate::release::labels::Storage;
    use crate::release::rollback_target::TargetBasis;
    use crate::state::Judgement;
    use jiff::Timestamp;

    fn view(revision: u32, verdict: Verdict, is_final: bool) -> ReleaseView {
        let mut lag = CheckResult::new("lag", Outcome::Fail, "the backlog <grows> & grows");
        lag.value = Some(2.5);
        lag.threshold = Some(Threshold {
            bound: Bound::Max,
            value: 0.5,
        });
        if verdict != Verdict::Failed {
            lag.outcome = Outcome::Pass;
        }
        ReleaseView {
            release: ReleaseKey::new("gim", "gim"),
            storage: Storage::Secret,
            revision,
            status: ReleaseStatus::Deployed,
            event: crate::release::event::EventName::Upgraded,
            chart: None,
            previous_chart: None,
            started: None,
            judgement: Some(Judgement {
                inconclusive_since: None,
                overdue: false,
                verdict,
                action: if verdict == Verdict::Failed {
                    RecommendedAction::Rollback {
                        target: 2,
                        basis: TargetBasis::PassedBake,
                        command: "helm rollback gim 2 -n gim --timeout 15m".into(),
                    }
                } else {
                    RecommendedAction::None
                },
                results: vec![lag],
                notes: vec![],
                bake_ends: Timestamp::from_second(0).unwrap(),
                evaluated_at: Timestamp::from_second(0).unwrap(),
                is_final,
            }),
            problem: None,
            mode: None,
            automation: None,
            after_bake: None,
            controls: Default::default(),
        }
    }

    #[test]
    fn one_message_per_change_with_the_command_and_the_checks() {
        let mut book = Mailbook::default();
        assert!(
            book.changes(
                [&view(3, Verdict::Progressing, false)].into_iter(),
                &Links::default()
            )
            .is_empty()
        );
        let mails = book.changes(
            [&view(3, Verdict::Failed, false)].into_iter(),
            &Links::default(),
        );
        assert_eq!(mails.len(), 1);
        let mail = mails[0].as_ref().unwrap();
        assert_eq!(mail.subject, "[upgrade-guard] gim/gim revision 3: failed");
        assert!(
            mail.text
                .contains("    helm rollback gim 2 -n gim --timeout 15m"),
            "{}",
            mail.text
        );
        assert!(
            mail.text.contains("FAIL  lag  2.5 (<= 0.5)"),
            "{}",
            mail.text
        );
        assert!(
            mail.html.contains("the backlog &lt;grows&gt; &amp; grows"),
            "{}",
            mail.html
        );
        // The same state again (a re-send, a later round): no message.
        assert!(
            book.changes(
                [&view(3, Verdict::Failed, false)].into_iter(),
                &Links::default()
            )
            .is_empty()
        );
        // Healthy after a failure is news; healthy again is not.
        let mails = book.changes(
            [&view(4, Verdict::Healthy, true)].into_iter(),
            &Links::default(),
        );
        assert_eq!(
            mails[0].as_ref().unwrap().subject,
            "[upgrade-guard] gim/gim revision 4: healthy"
        );
        assert!(
            book.changes(
                [&view(5, Verdict::Healthy, true)].into_iter(),
                &Links::default()
            )
            .is_empty()
        );
    }

    /// Issue 19.13: a revision that broke after its bake is mailed once, with what broke and
    /// the command; once it stops, the healthy verdict of its bake is news again.
    #[test]
    fn a_mail_says_the_chart_and_app_version_before_and_after() {
        let mut failed = view(3, Verdict::Failed, false);
        failed.chart = Some(crate::state::ChartView {
            name: "gim".into(),
            version: "100.0.117".into(),
            app_version: Some("100.0.117".into()),
        });
        failed.previous_chart = Some(crate::state::ChartView {
            name: "gim".into(),
            version: "100.0.116".into(),
            app_version: Some("100.0.116".into()),
        });
        let mail = Mailbook::default()
            .changes([&failed].into_iter(), &Links::default())
            .remove(0)
            .unwrap();
        assert!(
            mail.text.contains(
                "chart gim-100.0.116 -> gim-100.0.117, app version 100.0.116 -> 100.0.117"
            ),
            "{}",
            mail.text
        );
        assert!(
            mail.html
                .contains("<code>gim-100.0.116</code> &rarr; <code>gim-100.0.117</code>"),
            "{}",
            mail.html
        );
    }

    #[test]
    fn the_operators_templates_replace_the_built_in_ones_and_fall_back_when_they_fail() {
        let failed = view(3, Verdict::Failed, false);
        let custom = Templates {
            text: Some("{{ release }} is {{ headline }}; run: {{ command }}".into()),
            html: None,
        };
        let mail = Mailbook::with_templates(&custom)
            .unwrap()
            .changes([&failed].into_iter(), &Links::default())
            .remove(0)
            .unwrap();
        assert!(
            mail.text
                .starts_with("gim/gim is failed; run: helm rollback"),
            "{}",
            mail.text
        );
        assert!(
            mail.html.contains("<table"),
            "the built-in HTML: {}",
            mail.html
        );
        assert_eq!(mail.template_error, None);
        // One that cannot render (an unknown filter) leaves the built-in text, and says why.
        let broken = Templates {
            text: Some("{{ release | shout }}".into()),
            html: None,
        };
        // Filters are looked up when rendering: the template parses, the message falls back.
        let mail = Mailbook::with_templates(&broken)
            .unwrap()
            .changes([&failed].into_iter(), &Links::default())
            .remove(0)
            .unwrap();
        assert!(
            mail.text.contains("gim/gim revision 3: failed"),
            "{}",
            mail.text
        );
        assert!(
            mail.template_error
                .as_deref()
                .is_some_and(|e| e.contains("email.txt"))
        );
        let unparsable = Templates {
            text: Some("{% if %}".into()),
            html: None,
        };
        assert!(Mailbook::with_templates(&unparsable).is_err());
    }

    #[test]
    fn a_revision_that_broke_after_its_bake_is_mailed_once() {
        let mut book = Mailbook::default();
        let healthy = view(3, Verdict::Healthy, true);
        assert!(
            book.changes([&healthy].into_iter(), &Links::default())
                .is_empty()
        );
        let mut broke = healthy.clone();
        let mut crash = CheckResult::new(
            "pending_pods",
            Outcome::Fail,
            "1 pod(s) not Ready past their timeout: CrashLoopBackOff 1",
        );
        crash.value = Some(1.0);
        broke.after_bake = Some(Box::new(crate::state::AfterBakeView {
            since: Timestamp::from_second(3600).unwrap(),
            until: Timestamp::from_second(6 * 3600).unwrap(),
            judgement: Judgement {
                verdict: Verdict::Failed,
                action: RecommendedAction::Rollback {
                    target: 2,
                    basis: TargetBasis::PassedBake,
                    command: "helm rollback gim 2 -n gim --timeout 15m".into(),
                },
                results: vec![crash],
                ..healthy.judgement.clone().unwrap()
            },
        }));
        let mails = book.changes([&broke].into_iter(), &Links::default());
        assert_eq!(mails.len(), 1);
        let mail = mails[0].as_ref().unwrap();
        assert_eq!(
            mail.subject,
            "[upgrade-guard] gim/gim revision 3: broke after its bake (alerted; upgrade-guard does not act on it automatically)"
        );
        assert!(
            mail.text.contains("FAIL  pending_pods  1")
                && mail
                    .text
                    .contains("helm rollback gim 2 -n gim --timeout 15m"),
            "{}",
            mail.text
        );
        assert!(
            book.changes([&broke].into_iter(), &Links::default())
                .is_empty()
        );
        let mails = book.changes([&healthy].into_iter(), &Links::default());
        assert_eq!(
            mails[0].as_ref().unwrap().subject,
            "[upgrade-guard] gim/gim revision 3: healthy"
        );
    }

    /// Issue 19.14: an `inconclusive` that lasts is mailed once, with what cannot be judged.
    #[test]
    fn an_overdue_inconclusive_is_mailed_once() {
        let mut book = Mailbook::default();
        let mut v = view(3, Verdict::Inconclusive, false);
        if let Some(j) = v.judgement.as_mut() {
            j.results[0].outcome = Outcome::Inconclusive;
            j.results[0].summary = "Prometheus did not answer (4 failures in a row)".into();
        }
        assert!(
            book.changes([&v].into_iter(), &Links::default()).is_empty(),
            "not yet"
        );
        if let Some(j) = v.judgement.as_mut() {
            j.overdue = true;
        }
        let mails = book.changes([&v].into_iter(), &Links::default());
        assert_eq!(mails.len(), 1);
        let mail = mails[0].as_ref().unwrap();
        assert_eq!(
            mail.subject,
            "[upgrade-guard] gim/gim revision 3: inconclusive for too long: cannot be judged"
        );
        assert!(
            mail.text.contains("Prometheus did not answer"),
            "{}",
            mail.text
        );
        assert!(
            book.changes([&v].into_iter(), &Links::default()).is_empty(),
            "once"
        );
    }

    #[test]
    fn a_notice_is_mailed_once_and_again_only_when_noticed_again() {
        use crate::state::{Notice, NoticeKind};
        let notice = |at: i64| Notice {
            release: ReleaseKey::new("gsp", "gsp"),
            revision: 4,
            kind: NoticeKind::Uninstalled,
            words: "gsp/gsp was uninstalled; 1 ConfigMap(s) left".into(),
            command: Some("kubectl delete cm --selector=app=gsp -n gsp".into()),
            at: Timestamp::from_second(at).unwrap(),
            until: Timestamp::from_second(at + 3600).unwrap(),
        };
        let mut book = Mailbook::default();
        let mails = book.notices(&[notice(0)], &Links::default());
        assert_eq!(mails.len(), 1);
        let mail = mails[0].as_ref().unwrap();
        assert_eq!(
            mail.subject,
            "[upgrade-guard] gsp/gsp revision 4: uninstalled"
        );
        assert!(
            mail.text
                .contains("    kubectl delete cm --selector=app=gsp -n gsp"),
            "{}",
            mail.text
        );
        assert!(
            book.notices(&[notice(0)], &Links::default()).is_empty(),
            "told once"
        );
        assert_eq!(
            book.notices(&[notice(10)], &Links::default()).len(),
            1,
            "a new uninstall"
        );
    }

    /// Issue 20.10: a replica that starts telling takes what any replica confirmed sent as
    /// told, and sends what nobody confirmed.
    #[test]
    fn what_was_confirmed_sent_is_not_sent_again() {
        use crate::state::{Notice, NoticeKind};
        let mut first = Mailbook::default();
        let mails = first.changes(
            [&view(3, Verdict::Failed, false)].into_iter(),
            &Links::default(),
        );
        let sent = mails[0].as_ref().unwrap().confirm.clone().unwrap();
        assert_eq!(sent.key, "mail.gim.gim");
        let notice = Notice {
            release: ReleaseKey::new("gsp", "gsp"),
            revision: 4,
            kind: NoticeKind::Uninstalled,
            words: "uninstalled".into(),
            command: None,
            at: Timestamp::from_second(7).unwrap(),
            until: Timestamp::from_second(3607).unwrap(),
        };
        let told = first.notices(std::slice::from_ref(&notice), &Links::default())[0]
            .as_ref()
            .unwrap()
            .confirm
            .clone()
            .unwrap();
        let confirmed = BTreeMap::from([
            (sent.key, sent.value),
            (told.key, told.value),
            ("mail.x.y".to_string(), "{not json".to_string()),
        ]);
        let mut next = Mailbook::default();
        next.seed(&confirmed);
        assert!(
            next.changes(
                [&view(3, Verdict::Failed, false)].into_iter(),
                &Links::default()
            )
            .is_empty(),
            "confirmed: not sent again"
        );
        assert!(
            next.notices(std::slice::from_ref(&notice), &Links::default())
                .is_empty()
        );
        let mails = next.changes(
            [&view(3, Verdict::Healthy, true)].into_iter(),
            &Links::default(),
        );
        assert_eq!(mails.len(), 1, "the recovery nobody confirmed is sent");
        // Nothing confirmed: everything that fails now is sent.
        let mut fresh = Mailbook::default();
        fresh.seed(&BTreeMap::new());
        assert_eq!(
            fresh
                .changes(
                    [&view(3, Verdict::Failed, false)].into_iter(),
                    &Links::default()
                )
                .len(),
            1
        );
    }
}
