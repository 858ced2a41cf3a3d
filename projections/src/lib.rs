//! Read models and reports, built only from the log. Each report is a
//! typed model (serialisable, for JSON) plus a [`doc::Document`] that the
//! binary renders as text, Markdown, HTML or CSV: one model, many renderings.
//!
//! Bitemporal: a [`view::LogView`] is folded from the events recorded up to
//! the end of an `as_of` date (Swedish time), while every fact keeps the
//! date it happened; every report states the log head it was built from.

pub mod annual;
pub mod audit;
pub mod checkpoint;
pub mod compliance;
pub mod deadlines;
pub mod dialogues;
pub mod doc;
pub mod lang;
pub mod view;

pub use doc::Document;
pub use lang::Lang;
pub use view::{Disclosure, Erasure, LogView, Withheld};
