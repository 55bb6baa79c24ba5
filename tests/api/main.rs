//! One integration test binary; each area of the gateway has its own module.

mod upstream;
