//! The one integration test binary: the storage conformance suite run on
//! every backend, a property test against a model, the codec corpus, the
//! crash loop, and the command line's behaviour on good and bad input.

mod calendar;
mod cli;
mod conformance;
mod corpus;
mod crash;
mod model;
mod remind;
mod reports;
mod support;
mod workflows;
