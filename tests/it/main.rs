//! The one integration test binary: the storage conformance suite run on
//! every backend, a property test against a model, the codec corpus, the
//! crash loop, the command line's behaviour on good and bad input, and the
//! real histories of the source documents as scenario files, and the
//! web interface over HTTP on loopback and in headless Chromium.

mod browser;
mod calendar;
mod catalogue;
mod cli;
mod conformance;
mod corpus;
mod corruption;
mod crash;
mod faults;
mod fuzz;
mod index;
mod jetstream;
mod model;
mod nats;
mod remind;
mod reports;
mod scenarios;
mod support;
mod trust;
mod web;
mod workflows;
