//! Test harness: real `redis-server` and a real Kafka-protocol broker (tansu) on free loopback
//! ports, the built `fraud-sla` binary, and rdkafka clients to drive it.
//!
//! - [`servers`]: ports, processes, Redis (and Redis Cluster), the broker, topics;
//! - [`processor`]: the processor's config, process, HTTP and metrics, and [`Env`];
//! - [`records`]: what tests produce and read back, id checks, personal-data scans;
//! - [`run`]: one processor with its servers, and what most end-to-end tests do with it;
//! - [`browser`]: headless Chromium over WebDriver, for the board.
//!
//! Every test binary compiles this module (`mod common;`) and uses part of it.
#![allow(dead_code, unreachable_pub)]

mod browser;
mod processor;
mod records;
mod run;
mod servers;

// A test binary that uses nothing of a module would warn about its re-export.
#[allow(unused_imports)]
pub use browser::*;
#[allow(unused_imports)]
pub use processor::*;
#[allow(unused_imports)]
pub use records::*;
#[allow(unused_imports)]
pub use run::*;
#[allow(unused_imports)]
pub use servers::*;
