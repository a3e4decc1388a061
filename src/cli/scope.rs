//! Which namespace a command works in when `-n` is not given, as helm chooses it.

/// `-n` or $HELM_NAMESPACE (`given`), else the current kubeconfig context's namespace (the
/// client's default: `default` when the context names none, the service account's in a
/// pod).
pub fn namespace(given: Option<&str>, client: &kube::Client) -> String {
    given.map_or_else(|| client.default_namespace().to_string(), str::to_string)
}
