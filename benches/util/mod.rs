//! A small timing harness shared by the bench binaries: runs an operation in batches until a
//! time budget is spent and prints one table row per operation (median of batches).

use std::time::{Duration, Instant};

pub struct Table {
    budget: Duration,
}

impl Table {
    pub fn new(title: &str) -> Self {
        // BENCH_SECONDS shortens or lengthens every row (e.g. 0.2 for a smoke run).
        let secs: f64 = std::env::var("BENCH_SECONDS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(1.0);
        println!("\n{title}");
        println!(
            "{:<44} {:>14} {:>14} {:>10}",
            "operation", "per op", "ops/s", "samples"
        );
        println!("{}", "-".repeat(86));
        Table {
            budget: Duration::from_secs_f64(secs),
        }
    }

    /// Times `op`, which performs `units` operations per call (e.g. 10k blocks in one CAR).
    pub fn row<T>(&self, name: &str, units: u64, mut op: impl FnMut() -> T) {
        // Warm up and size a batch to ~10 ms so timer overhead is negligible.
        let start = Instant::now();
        std::hint::black_box(op());
        let one = start.elapsed().max(Duration::from_nanos(1));
        let batch =
            ((Duration::from_millis(10).as_nanos() / one.as_nanos()) as u64).clamp(1, 1_000_000);

        let mut per_call = Vec::new();
        let deadline = Instant::now() + self.budget;
        while Instant::now() < deadline || per_call.len() < 3 {
            let t = Instant::now();
            for _ in 0..batch {
                std::hint::black_box(op());
            }
            per_call.push(t.elapsed().as_nanos() as f64 / batch as f64);
        }
        per_call.sort_by(f64::total_cmp);
        let median = per_call[per_call.len() / 2];
        let per_unit = median / units as f64;
        println!(
            "{:<44} {:>14} {:>14.0} {:>10}",
            name,
            format_ns(per_unit),
            1e9 / per_unit,
            per_call.len() as u64 * batch
        );
    }
}

pub fn format_ns(ns: f64) -> String {
    if ns >= 1e6 {
        format!("{:.2} ms", ns / 1e6)
    } else if ns >= 1e3 {
        format!("{:.2} µs", ns / 1e3)
    } else {
        format!("{ns:.0} ns")
    }
}
