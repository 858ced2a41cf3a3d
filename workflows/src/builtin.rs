//! The definitions shipped with styrlogg, from the source documents. They
//! live as TOML files in `workflows/definitions/`; the binary carries them
//! so it works from any directory. Files a user keeps elsewhere are read
//! the same way.

/// (file name, source text) of each built-in definition.
pub const DEFINITIONS: &[(&str, &str)] = &[
    ("skl-styrsystem-2012-2014.toml", include_str!("../definitions/skl-styrsystem-2012-2014.toml")),
    ("masterclass-2015-2017.toml", include_str!("../definitions/masterclass-2015-2017.toml")),
    ("medborgardialog.toml", include_str!("../definitions/medborgardialog.toml")),
    ("protokoll-laga-kraft.toml", include_str!("../definitions/protokoll-laga-kraft.toml")),
    ("harryda-medborgardialog.toml", include_str!("../definitions/harryda-medborgardialog.toml")),
];
