//! Helpers shared by the integration tests. Each test binary compiles this module and uses
//! a different part of it, hence the allowance for unused items.
#![allow(dead_code)]

pub mod logs;
pub mod moto;
