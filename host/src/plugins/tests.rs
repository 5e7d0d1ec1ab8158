//! Tests that load the example plugins from `plugins/dist`.
