//! Who may read `/metrics` and `/api/v1/releases` (I/O), as kube-rbac-proxy checks it: the
//! request's bearer token is authenticated by the API server (TokenReview), and the user it
//! names must be allowed to `get` the path as a non-resource URL (SubjectAccessReview), which
//! a ClusterRole grants (`nonResourceURLs: ["/metrics"], verbs: ["get"]`). The API's path is
//! authorized as `/upgrade-guard/api/v1/releases` ([`authorized_path`]): Kubernetes' default
//! `system:discovery` role lets every authenticated user get `/api/*`. Answers are
//! reused for `http.auth_cache`, keyed by a hash of the token under a key random to this
//! process (the token itself is never kept, logged or compared).

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::sync::Mutex;
use std::time::Duration;

use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use k8s_openapi::api::authorization::v1::{
    NonResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use kube::api::{Api, PostParams};
use tokio::time::Instant;

/// Cached answers at most (the oldest are dropped past it).
const MAX_CACHED: usize = 1024;

/// The answer for one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Allowed.
    Allowed,
    /// No token, or one the API server does not accept (401).
    Unauthenticated(String),
    /// The user may not read the path (403).
    Forbidden(String),
    /// The API server could not be asked (503; never cached).
    Unavailable(String),
}

/// Checks tokens against the API server.
pub struct Authenticator {
    client: kube::Client,
    ttl: Duration,
    key: std::collections::hash_map::RandomState,
    cache: Mutex<HashMap<(u64, String), (Decision, Instant)>>,
}

/// The non-resource URL a request path is authorized as: `/metrics` as is (what
/// Prometheus' roles grant), anything else under `/upgrade-guard` (Kubernetes grants every
/// authenticated user `/api/*` by default).
pub fn authorized_path(path: &str) -> String {
    if path == "/metrics" {
        path.to_string()
    } else {
        format!("/upgrade-guard{path}")
    }
}

/// The token of an `Authorization: Bearer …` header.
pub fn bearer(header: Option<&str>) -> Option<&str> {
    let value = header?.trim();
    let (scheme, token) = value.split_once(' ')?;
    (scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty()).then(|| token.trim())
}

impl Authenticator {
    /// Asks the API server through `client`, reusing answers for `ttl`.
    pub fn new(client: kube::Client, ttl: Duration) -> Self {
        Self {
            client,
            ttl,
            key: std::collections::hash_map::RandomState::new(),
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// Whether the request with `authorization` may read `path`.
    pub async fn check(&self, authorization: Option<&str>, path: &str) -> Decision {
        let Some(token) = bearer(authorization) else {
            return Decision::Unauthenticated(
                "send a bearer token (Authorization: Bearer <token>) of a user allowed to get this path".into(),
            );
        };
        let mut h = self.key.build_hasher();
        h.write(token.as_bytes());
        let id = (h.finish(), path.to_string());
        if let Ok(cache) = self.cache.lock()
            && let Some((d, at)) = cache.get(&id)
            && at.elapsed() < self.ttl
        {
            return d.clone();
        }
        let decision = self.ask(token, path).await;
        if !matches!(decision, Decision::Unavailable(_))
            && let Ok(mut cache) = self.cache.lock()
        {
            if cache.len() >= MAX_CACHED {
                cache.retain(|_, (_, at)| at.elapsed() < self.ttl);
            }
            if cache.len() < MAX_CACHED {
                cache.insert(id, (decision.clone(), Instant::now()));
            }
        }
        decision
    }

    async fn ask(&self, token: &str, path: &str) -> Decision {
        let review = TokenReview {
            spec: TokenReviewSpec {
                token: token.to_string(),
                ..Default::default()
            },
            ..Default::default()
        };
        let reviewed = match Api::<TokenReview>::all(self.client.clone())
            .create(&PostParams::default(), &review)
            .await
        {
            Ok(r) => r.status.unwrap_or_default(),
            Err(e) => return Decision::Unavailable(format!("cannot review the token: {e}")),
        };
        let Some(user) = reviewed
            .user
            .filter(|_| reviewed.authenticated == Some(true))
        else {
            return Decision::Unauthenticated(
                reviewed
                    .error
                    .unwrap_or_else(|| "the API server does not accept the token".into()),
            );
        };
        let name = user.username.clone().unwrap_or_default();
        let path = authorized_path(path);
        let path = path.as_str();
        let access = SubjectAccessReview {
            spec: SubjectAccessReviewSpec {
                user: user.username,
                groups: user.groups,
                uid: user.uid,
                extra: user.extra,
                non_resource_attributes: Some(NonResourceAttributes {
                    path: Some(path.to_string()),
                    verb: Some("get".into()),
                }),
                ..Default::default()
            },
            ..Default::default()
        };
        match Api::<SubjectAccessReview>::all(self.client.clone())
            .create(&PostParams::default(), &access)
            .await
        {
            Ok(r) if r.status.as_ref().is_some_and(|s| s.allowed) => Decision::Allowed,
            Ok(_) => Decision::Forbidden(format!(
                "{name} may not get {path}: grant it with a ClusterRole (nonResourceURLs: [\"{path}\"], verbs: [get])"
            )),
            Err(e) => Decision::Unavailable(format!("cannot review the access: {e}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_api_is_authorized_outside_the_kubernetes_api_paths() {
        assert_eq!(authorized_path("/metrics"), "/metrics");
        assert_eq!(
            authorized_path("/api/v1/releases"),
            "/upgrade-guard/api/v1/releases"
        );
    }

    #[test]
    fn only_a_bearer_token_is_a_token() {
        assert_eq!(bearer(Some("Bearer abc")), Some("abc"));
        assert_eq!(bearer(Some("bearer  abc ")), Some("abc"));
        assert_eq!(bearer(Some("Basic dXNlcjpw")), None);
        assert_eq!(bearer(Some("Bearer ")), None);
        assert_eq!(bearer(None), None);
    }
}
