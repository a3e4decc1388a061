//! The answers that cost work (`/metrics`, `/api/v1/releases`), built one at a time per
//! kind on a blocking thread and shared: a request waits for the build in flight, then
//! takes the answer built after it arrived or builds one. However many clients read at
//! once, reading costs one build at a time (the main loop keeps its share of the CPU),
//! and no request gets an answer older than itself.

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Response, StatusCode};
use tokio::sync::Mutex;
use tokio::time::Instant;

/// Plain text's content type.
pub const TEXT: &str = "text/plain; charset=utf-8";

/// A built answer.
#[derive(Debug)]
pub struct Answer {
    /// Its status.
    pub status: StatusCode,
    /// Its `Content-Type`.
    pub content_type: &'static str,
    /// Its body.
    pub body: Bytes,
}

impl Answer {
    /// The HTTP response (the body is shared, not copied).
    pub fn response(&self) -> Response<Full<Bytes>> {
        let mut response = Response::new(Full::new(self.body.clone()));
        *response.status_mut() = self.status;
        if let Ok(v) = self.content_type.parse() {
            response
                .headers_mut()
                .insert(hyper::header::CONTENT_TYPE, v);
        }
        response
    }
}

/// The kinds of costly answer (each built and shared on its own).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Costly {
    /// `/metrics`, in OpenMetrics or in the classic text format.
    Metrics {
        /// OpenMetrics (the scraper accepts it).
        openmetrics: bool,
    },
    /// `/api/v1/releases`.
    Releases,
}

impl Costly {
    fn slot(self) -> usize {
        match self {
            Self::Metrics { openmetrics: false } => 0,
            Self::Metrics { openmetrics: true } => 1,
            Self::Releases => 2,
        }
    }
}

/// Whether the answer was built for this request or shared with others.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Built for it.
    Built,
    /// Built for another request, after this one arrived.
    Shared,
}

/// An answer and when its build started.
type Last = Option<(Instant, Arc<Answer>)>;

/// The last answer of each kind, and when its build started.
#[derive(Debug, Default)]
pub struct Answers {
    slots: [Mutex<Last>; 3],
}

impl Answers {
    /// The answer of `kind` for a request that arrived at `arrived`: one whose build started
    /// since, or one `build` makes now (on a blocking thread, while the others wait). `build`
    /// is given an empty buffer for its body, as large as the previous answer and a little
    /// more ([`buffer`]).
    pub async fn get(
        &self,
        kind: Costly,
        arrived: Instant,
        build: impl FnOnce(Vec<u8>) -> Answer + Send + 'static,
    ) -> (Arc<Answer>, Source) {
        let mut slot = self.slots[kind.slot()].lock().await;
        if let Some((started, answer)) = slot.as_ref()
            && *started >= arrived
        {
            return (answer.clone(), Source::Shared);
        }
        // The old answer is of no use to anyone from now on: it goes before the new one
        // is built, so two of them are never held at once.
        let previous = slot.take().map(|(_, a)| a);
        let started = Instant::now();
        let answer = Arc::new(
            tokio::task::spawn_blocking(move || build(buffer(previous)))
                .await
                .unwrap_or_else(|e| Answer {
                    status: StatusCode::INTERNAL_SERVER_ERROR,
                    content_type: TEXT,
                    body: Bytes::from(format!("the answer could not be built: {e}\n")),
                }),
        );
        *slot = Some((started, answer.clone()));
        (answer, Source::Built)
    }
}

/// An empty buffer for the next answer of a kind, with room for the previous one and an
/// eighth more: the previous answer's own when no response holds it any more (a block of
/// megabytes is reused, not mapped anew and faulted in page by page at each build), else a
/// new one.
fn buffer(previous: Option<Arc<Answer>>) -> Vec<u8> {
    let Some(previous) = previous else {
        return Vec::new();
    };
    let wanted = previous.body.len() + previous.body.len() / 8;
    let reclaimed = Arc::try_unwrap(previous)
        .ok()
        .and_then(|a| a.body.try_into_mut().ok())
        .map(Vec::from);
    let mut buffer = reclaimed.unwrap_or_default();
    buffer.clear();
    buffer.reserve(wanted);
    buffer
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn text(s: &str) -> Answer {
        Answer {
            status: StatusCode::OK,
            content_type: "text/plain",
            body: Bytes::from(s.to_string()),
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn requests_that_arrive_during_a_build_share_the_next_one_and_never_an_older_one() {
        let answers = Arc::new(Answers::default());
        let builds = Arc::new(AtomicUsize::new(0));
        // A first build is in flight (it waits for the others to arrive).
        let (go, wait) = std::sync::mpsc::channel::<()>();
        let (running, started) = tokio::sync::oneshot::channel::<()>();
        let first = {
            let (answers, builds) = (answers.clone(), builds.clone());
            tokio::spawn(async move {
                answers
                    .get(Costly::Releases, Instant::now(), move |_| {
                        running.send(()).unwrap();
                        wait.recv().unwrap();
                        builds.fetch_add(1, Ordering::SeqCst);
                        text("first")
                    })
                    .await
            })
        };
        started.await.unwrap();
        // Ten more arrive while it runs: the first build started before them, so they
        // share one build of their own, never the first answer.
        let arrived = Instant::now();
        let later: Vec<_> = (0..10)
            .map(|_| {
                let (answers, builds) = (answers.clone(), builds.clone());
                tokio::spawn(async move {
                    answers
                        .get(Costly::Releases, arrived, move |_| {
                            builds.fetch_add(1, Ordering::SeqCst);
                            text("second")
                        })
                        .await
                })
            })
            .collect();
        go.send(()).unwrap();
        let (a, source) = first.await.unwrap();
        assert_eq!((a.body.as_ref(), source), (&b"first"[..], Source::Built));
        let mut built = 0;
        for l in later {
            let (a, source) = l.await.unwrap();
            assert_eq!(a.body.as_ref(), b"second");
            built += usize::from(source == Source::Built);
        }
        assert_eq!(built, 1, "one build for the ten");
        assert_eq!(builds.load(Ordering::SeqCst), 2);
        // Another kind is built on its own, with no previous answer to size it by.
        let (a, source) = answers
            .get(
                Costly::Metrics { openmetrics: true },
                Instant::now(),
                |buffer| text(&buffer.capacity().to_string()),
            )
            .await;
        assert_eq!(source, Source::Built);
        assert_eq!(a.body.as_ref(), b"0");
        // A new build gets room for the last answer of its kind ("second").
        let (a, _) = answers
            .get(Costly::Releases, Instant::now(), |buffer| {
                text(&format!("{} {}", buffer.len(), buffer.capacity() >= 6))
            })
            .await;
        assert_eq!(a.body.as_ref(), b"0 true");
    }

    #[tokio::test]
    async fn a_large_answer_s_buffer_is_reused_once_no_response_holds_it() {
        let answers = Answers::default();
        let big = |buffer: Vec<u8>| {
            let mut body = buffer;
            body.resize(2 << 20, b'x');
            Answer {
                status: StatusCode::OK,
                content_type: "text/plain",
                body: Bytes::from(body),
            }
        };
        let kind = Costly::Metrics { openmetrics: true };
        let (first, _) = answers.get(kind, Instant::now(), big).await;
        let at = first.body.as_ptr();
        // A response still holds it: the next build gets a buffer of its own.
        let held = first.body.clone();
        drop(first);
        let (second, _) = answers.get(kind, Instant::now(), big).await;
        assert_ne!(second.body.as_ptr(), at);
        assert_eq!(held.len(), 2 << 20, "the held answer is untouched");
        drop(held);
        // Nobody holds the second any more: the third is built in its memory.
        let at = second.body.as_ptr();
        drop(second);
        let (third, _) = answers
            .get(kind, Instant::now(), move |buffer| {
                assert!(buffer.is_empty() && buffer.capacity() >= 2 << 20);
                big(buffer)
            })
            .await;
        assert_eq!(third.body.as_ptr(), at);
        assert_eq!(third.body.len(), 2 << 20);
    }
}
