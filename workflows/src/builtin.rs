//! The definitions and scenarios shipped with styrlogg, from the source
//! documents. They live as TOML files in `workflows/definitions/` and
//! `workflows/scenarios/`; the binary carries them so it works from any
//! directory. Files a user keeps elsewhere are read the same way.

/// (file name, source text) of each built-in definition.
pub const DEFINITIONS: &[(&str, &str)] = &[
    ("skl-styrsystem-2012-2014.toml", include_str!("../definitions/skl-styrsystem-2012-2014.toml")),
    ("masterclass-2015-2017.toml", include_str!("../definitions/masterclass-2015-2017.toml")),
    ("medborgardialog.toml", include_str!("../definitions/medborgardialog.toml")),
    ("protokoll-laga-kraft.toml", include_str!("../definitions/protokoll-laga-kraft.toml")),
    ("harryda-medborgardialog.toml", include_str!("../definitions/harryda-medborgardialog.toml")),
];

/// (file name, source text) of each built-in scenario: the real histories
/// of the five source documents, in the order the demo loads them.
pub const SCENARIOS: &[(&str, &str)] = &[
    ("001-skl-inbjudan-tyreso.toml", include_str!("../scenarios/001-skl-inbjudan-tyreso.toml")),
    ("000-jonkoping-landsting.toml", include_str!("../scenarios/000-jonkoping-landsting.toml")),
    ("002-alvsjo-masterclass.toml", include_str!("../scenarios/002-alvsjo-masterclass.toml")),
    ("003-region-skane.toml", include_str!("../scenarios/003-region-skane.toml")),
    ("004-harryda.toml", include_str!("../scenarios/004-harryda.toml")),
];
