//! Per-call resource limits: what a plugin asks for in its manifest, what the
//! operator allows, and the [`ResourceLimiter`] that enforces memory.
//!
//! Limits are always on. A plugin's `[limits]` table may ask for more or less
//! than the default; the operator's [`LimitsPolicy`] clamps every request to
//! its maximum. Fuel (an instruction budget) is off unless the operator sets
//! a maximum for it.

use std::time::Duration;

use wasmtime::ResourceLimiter;

/// One mebibyte.
const MIB: u64 = 1024 * 1024;

/// The limits that apply to one plugin call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Wall-clock deadline of one call; the instance is killed when it passes.
    pub timeout: Duration,
    /// Total linear memory the instance may have, in bytes.
    pub memory_bytes: u64,
    /// Instruction budget of one call, when fuel is enabled.
    pub fuel: Option<u64>,
    /// Most log lines (including stdout/stderr lines) kept per call.
    pub log_lines: u64,
    /// Most log bytes kept per call.
    pub log_bytes: u64,
    /// Most table elements any one table may grow to.
    pub table_elements: u64,
    /// Most leases a plugin may hold at once.
    pub leases: usize,
    /// Most lease handles a plugin may have open at once, released or not
    /// (a released lease keeps its handle until the plugin drops it).
    pub lease_handles: usize,
    /// Most bytes the host copies out of the plugin in one crossing: the
    /// result of the call, or the arguments of one host call (a log line, a
    /// path). Counted as the host's copy: list elements at their host size,
    /// strings and byte lists at their length.
    pub transfer_bytes: u64,
    /// Longest step title a strategist may propose, in bytes.
    pub title_bytes: u64,
    /// Longest summary a plugin may return (of a proposal or of a step's
    /// outcome), in bytes.
    pub summary_bytes: u64,
    /// Most steps in one proposal.
    pub steps: u64,
    /// Most bytes of text in one proposal: its summary and every step's id,
    /// title, parameters and targets together.
    pub proposal_bytes: u64,
    /// Most WASI handles (streams, pollables, …) a plugin may hold at once,
    /// besides its lease handles: the size of its resource table.
    pub resource_handles: usize,
    /// Most bytes one `get-random-bytes` (or `get-insecure-random-bytes`)
    /// call may ask for.
    pub random_bytes: u64,
}

impl Limits {
    /// The built-in defaults: 10 s, 256 MiB, no fuel, 1000 log lines / 1 MiB,
    /// 64 leases in 1024 handles, 128 MiB per crossing; titles 1 KiB,
    /// summaries 4 KiB, 10 000 steps and 4 MiB per proposal; 1024 WASI
    /// handles, 1 MiB of random bytes per call.
    pub const DEFAULT: Limits = Limits {
        timeout: Duration::from_secs(10),
        memory_bytes: 256 * MIB,
        fuel: None,
        log_lines: 1000,
        log_bytes: MIB,
        table_elements: 100_000,
        leases: 64,
        lease_handles: 1024,
        transfer_bytes: 128 * MIB,
        title_bytes: 1024,
        summary_bytes: 4096,
        steps: 10_000,
        proposal_bytes: 4 * MIB,
        resource_handles: 1024,
        random_bytes: MIB,
    };

    /// The built-in ceilings: 5 min, 4 GiB, no fuel, 100 000 log lines / 64 MiB,
    /// 1024 leases in 16 384 handles, 1 GiB per crossing; titles 64 KiB,
    /// summaries 1 MiB, 100 000 steps and 64 MiB per proposal; 65 536 WASI
    /// handles, 64 MiB of random bytes per call.
    pub const MAX: Limits = Limits {
        timeout: Duration::from_secs(300),
        memory_bytes: 4096 * MIB,
        fuel: None,
        log_lines: 100_000,
        log_bytes: 64 * MIB,
        table_elements: 1_000_000,
        leases: 1024,
        lease_handles: 16_384,
        transfer_bytes: 1024 * MIB,
        title_bytes: 64 * 1024,
        summary_bytes: MIB,
        steps: 100_000,
        proposal_bytes: 64 * MIB,
        resource_handles: 65_536,
        random_bytes: 64 * MIB,
    };

    /// The timeout in whole milliseconds.
    pub fn timeout_ms(&self) -> u64 {
        u64::try_from(self.timeout.as_millis()).unwrap_or(u64::MAX)
    }

    /// [`Limits::transfer_bytes`] as wasmtime's per-crossing "hostcall
    /// fuel", at least one byte.
    pub fn transfer_fuel(&self) -> usize {
        usize::try_from(self.transfer_bytes.max(1)).unwrap_or(usize::MAX)
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits::DEFAULT
    }
}

/// What a plugin's manifest asks for (`[limits]` in `plugin.toml`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct RequestedLimits {
    /// `timeout_ms`.
    pub timeout_ms: Option<u64>,
    /// `memory_mb`.
    pub memory_mb: Option<u64>,
    /// `fuel`.
    pub fuel: Option<u64>,
}

/// The operator's policy: defaults for plugins that ask for nothing, and
/// ceilings no request may exceed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitsPolicy {
    /// Used where a plugin does not ask for a value.
    pub default: Limits,
    /// The most any plugin gets. `max.fuel = Some(n)` turns fuel metering on.
    pub max: Limits,
}

impl Default for LimitsPolicy {
    fn default() -> Self {
        LimitsPolicy {
            default: Limits::DEFAULT,
            max: Limits::MAX,
        }
    }
}

impl LimitsPolicy {
    /// Whether the engine must meter fuel.
    pub fn fuel_enabled(&self) -> bool {
        self.max.fuel.is_some()
    }

    /// The limits for a plugin that asked for `requested`: each value is the
    /// request (or the default) clamped to the maximum. Zero requests count
    /// as absent, so a plugin cannot disable a limit.
    pub fn resolve(&self, requested: &RequestedLimits) -> Limits {
        let d = self.default.clamp_to(&self.max);
        let timeout = requested
            .timeout_ms
            .filter(|ms| *ms > 0)
            .map(Duration::from_millis)
            .unwrap_or(d.timeout)
            .min(self.max.timeout);
        let memory_bytes = requested
            .memory_mb
            .filter(|mb| *mb > 0)
            .map(|mb| mb.saturating_mul(MIB))
            .unwrap_or(d.memory_bytes)
            .min(self.max.memory_bytes);
        let fuel = self.max.fuel.map(|max| {
            requested
                .fuel
                .filter(|f| *f > 0)
                .or(d.fuel)
                .unwrap_or(max)
                .min(max)
        });
        Limits {
            timeout,
            memory_bytes,
            fuel,
            ..d
        }
    }
}

/// One limit of a plugin's calls as `lockstep plugins inspect` shows it:
/// what the manifest asked for, what the policy grants, and whether a
/// ceiling cut it down.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Grant {
    /// The limit's name, as in the policy file (`timeout_ms`, `memory_mb`, …).
    pub limit: &'static str,
    /// What the manifest asked for (manifests may ask for `timeout_ms`,
    /// `memory_mb` and `fuel` only).
    pub requested: Option<u64>,
    /// What each call gets; `None` for fuel when it is not metered.
    pub granted: Option<u64>,
    /// The ceiling, when it cut the request or the default down.
    pub clamped_by: Option<u64>,
}

impl LimitsPolicy {
    /// Every limit a plugin asking for `requested` gets, with the ceiling
    /// that clamped it, in the policy file's names and units.
    pub fn grants(&self, requested: &RequestedLimits) -> Vec<Grant> {
        let got = self.resolve(requested);
        let mut out = Vec::from(self.requestable_grants(requested, &got));
        let [d, g, m] = [&self.default, &got, &self.max].map(fixed_values);
        out.extend(d.into_iter().zip(g).zip(m).map(
            |(((limit, default), (_, granted)), (_, max))| {
                clamp(limit, None, default, granted, max)
            },
        ));
        out
    }

    /// The grants of the limits a manifest may ask for: `timeout_ms`,
    /// `memory_mb` and `fuel` (not granted when fuel is not metered).
    fn requestable_grants(&self, requested: &RequestedLimits, got: &Limits) -> [Grant; 3] {
        let (d, m) = (self.default, self.max);
        let ms = |t: Duration| u64::try_from(t.as_millis()).unwrap_or(u64::MAX);
        let fuel = match (got.fuel, m.fuel) {
            (Some(f), Some(max)) => clamp(
                "fuel",
                requested.fuel.filter(|v| *v > 0),
                d.fuel.unwrap_or(max),
                f,
                max,
            ),
            _ => Grant {
                limit: "fuel",
                requested: requested.fuel,
                granted: None,
                clamped_by: None,
            },
        };
        [
            clamp(
                "timeout_ms",
                requested.timeout_ms.filter(|v| *v > 0),
                ms(d.timeout),
                ms(got.timeout),
                ms(m.timeout),
            ),
            clamp(
                "memory_mb",
                requested.memory_mb.filter(|v| *v > 0),
                d.memory_bytes / MIB,
                got.memory_bytes / MIB,
                m.memory_bytes / MIB,
            ),
            fuel,
        ]
    }
}

/// The limits a manifest cannot ask for, by their names in the policy file,
/// with their values in `limits`.
fn fixed_values(limits: &Limits) -> [(&'static str, u64); 12] {
    [
        ("log_lines", limits.log_lines),
        ("log_bytes", limits.log_bytes),
        ("table_elements", limits.table_elements),
        ("leases", limits.leases as u64),
        ("lease_handles", limits.lease_handles as u64),
        ("transfer_bytes", limits.transfer_bytes),
        ("title_bytes", limits.title_bytes),
        ("summary_bytes", limits.summary_bytes),
        ("steps", limits.steps),
        ("proposal_bytes", limits.proposal_bytes),
        ("resource_handles", limits.resource_handles as u64),
        ("random_bytes", limits.random_bytes),
    ]
}

/// A grant of `granted` for a request (or else the default) against `max`.
fn clamp(
    limit: &'static str,
    requested: Option<u64>,
    default: u64,
    granted: u64,
    max: u64,
) -> Grant {
    let wanted = requested.unwrap_or(default);
    Grant {
        limit,
        requested,
        granted: Some(granted),
        clamped_by: (wanted > max).then_some(max),
    }
}

impl Limits {
    /// Every value clamped to `max`.
    pub fn clamp_to(&self, max: &Limits) -> Limits {
        Limits {
            timeout: self.timeout.min(max.timeout),
            memory_bytes: self.memory_bytes.min(max.memory_bytes),
            fuel: match (self.fuel, max.fuel) {
                (Some(f), Some(m)) => Some(f.min(m)),
                (f, _) => f,
            },
            log_lines: self.log_lines.min(max.log_lines),
            log_bytes: self.log_bytes.min(max.log_bytes),
            table_elements: self.table_elements.min(max.table_elements),
            leases: self.leases.min(max.leases),
            lease_handles: self.lease_handles.min(max.lease_handles),
            transfer_bytes: self.transfer_bytes.min(max.transfer_bytes),
            title_bytes: self.title_bytes.min(max.title_bytes),
            summary_bytes: self.summary_bytes.min(max.summary_bytes),
            steps: self.steps.min(max.steps),
            proposal_bytes: self.proposal_bytes.min(max.proposal_bytes),
            resource_handles: self.resource_handles.min(max.resource_handles),
            random_bytes: self.random_bytes.min(max.random_bytes),
        }
    }
}

/// Enforces [`Limits::memory_bytes`] over all of an instance's memories and
/// [`Limits::table_elements`] per table, and remembers when it refused, so
/// that the trap that usually follows is reported as out-of-memory.
#[derive(Debug)]
pub struct MemoryLimiter {
    memory_limit: u64,
    table_limit: u64,
    in_use: u64,
    refused: Option<u64>,
}

impl MemoryLimiter {
    /// A limiter allowing `limits.memory_bytes` in total.
    pub fn new(limits: &Limits) -> Self {
        MemoryLimiter {
            memory_limit: limits.memory_bytes,
            table_limit: limits.table_elements,
            in_use: 0,
            refused: None,
        }
    }

    /// The size of the first growth that was refused, if any was.
    pub fn refused(&self) -> Option<u64> {
        self.refused
    }

    /// Bytes of linear memory currently granted.
    pub fn in_use(&self) -> u64 {
        self.in_use
    }
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let delta = desired.saturating_sub(current) as u64;
        let total = self.in_use.saturating_add(delta);
        if total > self.memory_limit {
            self.refused.get_or_insert(desired as u64);
            return Ok(false);
        }
        self.in_use = total;
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired as u64 <= self.table_limit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_clamped_and_defaults_fill_gaps() {
        let policy = LimitsPolicy::default();
        let l = policy.resolve(&RequestedLimits::default());
        assert_eq!(l, Limits::DEFAULT);
        let l = policy.resolve(&RequestedLimits {
            timeout_ms: Some(3_600_000),
            memory_mb: Some(64),
            fuel: Some(5),
        });
        assert_eq!(l.timeout, Duration::from_secs(300));
        assert_eq!(l.memory_bytes, 64 * MIB);
        assert_eq!(
            l.fuel, None,
            "fuel stays off unless the operator sets a maximum"
        );
        let zero = policy.resolve(&RequestedLimits {
            timeout_ms: Some(0),
            memory_mb: Some(0),
            fuel: None,
        });
        assert_eq!(zero.timeout, Limits::DEFAULT.timeout);
        assert_eq!(zero.memory_bytes, Limits::DEFAULT.memory_bytes);
    }

    #[test]
    fn fuel_is_metered_only_with_a_ceiling() {
        let mut policy = LimitsPolicy::default();
        policy.max.fuel = Some(1_000);
        assert!(policy.fuel_enabled());
        assert_eq!(
            policy.resolve(&RequestedLimits::default()).fuel,
            Some(1_000)
        );
        assert_eq!(
            policy
                .resolve(&RequestedLimits {
                    fuel: Some(10),
                    ..Default::default()
                })
                .fuel,
            Some(10)
        );
        assert_eq!(
            policy
                .resolve(&RequestedLimits {
                    fuel: Some(10_000),
                    ..Default::default()
                })
                .fuel,
            Some(1_000)
        );
    }

    #[test]
    fn grants_say_which_ceiling_clamped() {
        let mut policy = LimitsPolicy::default();
        policy.max.timeout = Duration::from_secs(2);
        let grants = policy.grants(&RequestedLimits {
            timeout_ms: Some(60_000),
            memory_mb: Some(64),
            fuel: None,
        });
        let of = |name: &str| grants.iter().find(|g| g.limit == name).unwrap().clone();
        assert_eq!(
            of("timeout_ms"),
            Grant {
                limit: "timeout_ms",
                requested: Some(60_000),
                granted: Some(2_000),
                clamped_by: Some(2_000)
            }
        );
        assert_eq!(of("memory_mb").granted, Some(64));
        assert_eq!(of("memory_mb").clamped_by, None);
        assert_eq!(of("fuel").granted, None);
        assert_eq!(of("summary_bytes").granted, Some(4096));
    }

    #[test]
    fn grants_name_every_limit_and_the_ceilings_that_cut_defaults() {
        let mut policy = LimitsPolicy::default();
        policy.max.log_lines = 10;
        policy.max.lease_handles = 8;
        let grants = policy.grants(&RequestedLimits::default());
        let names: Vec<_> = grants.iter().map(|g| g.limit).collect();
        assert_eq!(
            names,
            [
                "timeout_ms",
                "memory_mb",
                "fuel",
                "log_lines",
                "log_bytes",
                "table_elements",
                "leases",
                "lease_handles",
                "transfer_bytes",
                "title_bytes",
                "summary_bytes",
                "steps",
                "proposal_bytes",
                "resource_handles",
                "random_bytes"
            ]
        );
        let of = |name: &str| grants.iter().find(|g| g.limit == name).unwrap().clone();
        let cut = |granted| Grant {
            limit: "",
            requested: None,
            granted: Some(granted),
            clamped_by: Some(granted),
        };
        assert_eq!(
            of("log_lines"),
            Grant {
                limit: "log_lines",
                ..cut(10)
            }
        );
        assert_eq!(
            of("lease_handles"),
            Grant {
                limit: "lease_handles",
                ..cut(8)
            }
        );
        assert_eq!(of("leases").granted, Some(64));
        assert_eq!(of("leases").clamped_by, None);
        assert_eq!(of("random_bytes").granted, Some(MIB));
    }

    #[test]
    fn limiter_counts_all_memories_and_records_refusals() {
        let mut limiter = MemoryLimiter::new(&Limits {
            memory_bytes: 100,
            ..Limits::DEFAULT
        });
        assert!(limiter.memory_growing(0, 60, None).unwrap());
        assert!(limiter.memory_growing(0, 40, None).unwrap());
        assert_eq!(limiter.refused(), None);
        assert!(!limiter.memory_growing(60, 61, None).unwrap());
        assert_eq!(limiter.refused(), Some(61));
        assert_eq!(limiter.in_use(), 100);
    }
}
