//! upgrade-guard's own records, kept in ConfigMaps of its own namespace (never in Helm's
//! Secrets): each revision's final verdict (`bakes`), from which rollback targets are chosen,
//! and each automatic action's intent and outcome (`action`, `actions`), so that nothing runs
//! twice across restarts and replicas. `store` holds what both kinds share: the labels, the
//! namespace's ConfigMaps and the errors.

pub mod action;
pub mod actions;
pub mod bakes;
mod store;

pub use store::{MANAGED_BY, StoreError, record_labels, release_of};
