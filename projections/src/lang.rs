//! Report language: Swedish by default (the audience), English on request.

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub enum Lang {
    #[default]
    Sv,
    En,
}

impl Lang {
    /// Picks the Swedish or the English text.
    pub fn t<'a>(self, sv: &'a str, en: &'a str) -> &'a str {
        match self {
            Lang::Sv => sv,
            Lang::En => en,
        }
    }

    /// A definition title in this language.
    pub fn title(self, t: &workflows::definition::Title) -> String {
        self.t(&t.sv, &t.en).to_string()
    }

    /// `n` days: "1 dag", "3 dagar"; "1 day", "3 days".
    pub fn days(self, n: i64) -> String {
        match (self, n.abs() == 1) {
            (Lang::Sv, true) => format!("{n} dag"),
            (Lang::Sv, false) => format!("{n} dagar"),
            (Lang::En, true) => format!("{n} day"),
            (Lang::En, false) => format!("{n} days"),
        }
    }
}

/// A fact's value as readable text.
pub fn fact_text(v: &engine::FactValue, lang: Lang) -> String {
    use engine::{FactValue, PersonKind};
    match v {
        FactValue::Date(d) => d.to_string(),
        FactValue::Text(t) => t.to_string(),
        FactValue::AmountSek { ore } => format!("{},{:02} kr", ore / 100, (ore % 100).abs()),
        FactValue::Person { name, role, kind } => {
            let k = match kind {
                PersonKind::ElectedMember => lang.t("förtroendevald", "elected member"),
                PersonKind::Official => lang.t("tjänsteperson", "official"),
                PersonKind::Other => lang.t("övrig", "other"),
            };
            format!("{name}, {role} ({k})")
        }
        FactValue::CaseNumber(c) => format!("Dnr {c}"),
        FactValue::MinutesRef { body, date, paragraph } => format!("{body} {date} {paragraph}"),
        FactValue::Document { title, sha256 } => format!("{title} (sha256 {}…)", &sha256[..sha256.len().min(12)]),
        FactValue::Choice(c) => c.to_string(),
        FactValue::Sealed { .. } => lang.t("[förseglad personuppgift]", "[sealed personal data]").into(),
    }
}
