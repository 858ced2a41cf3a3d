//! Turning what a user types (`--fact KEY=VALUE`) into typed facts, by the
//! types a step's definition gives.

use crate::definition::{FactSpec, FactType};
use crate::{said, Bilingual};
use engine::{FactValue, PersonKind};
use jiff::civil::Date;

/// How a value of each type is written on the command line.
pub fn syntax(ty: &FactType) -> String {
    match ty {
        FactType::Date => "a date, 2012-08-14".into(),
        FactType::Person => "NAME|ROLE|KIND with KIND elected (förtroendevald) or official (tjänsteperson), e.g. \"Anna Berg|ordförande|elected\"".into(),
        FactType::Amount => "an amount in kronor, 8000 or 8 000,50".into(),
        FactType::CaseNumber => "a case number (diarienummer), LJ2012/896".into(),
        FactType::Minutes => "BODY|DATE|§, e.g. \"Planeringsdelegationen|2012-08-14|§ 100\"".into(),
        FactType::Document => "TITLE|SHA256 (64 hex digits of the document's content hash)".into(),
        FactType::Text => "any text".into(),
        FactType::Choice(options) => format!("one of: {}", options.join(", ")),
        FactType::Email => "an e-mail address, namn@kommun.se, or NAME|ADDRESS to say whose".into(),
        FactType::Phone => "a telephone number, 08-123 456 78 or +46 8 123 456 78, or NAME|NUMBER to say whose".into(),
    }
}

/// How a value of each type is written, in Swedish (the web form's hint,
/// and its messages).
pub fn syntax_sv(ty: &FactType) -> String {
    match ty {
        FactType::Date => "ett datum, ÅÅÅÅ-MM-DD, t.ex. 2012-08-14".into(),
        FactType::Person => "NAMN|ROLL|SLAG där SLAG är elected (förtroendevald) eller official (tjänsteperson), t.ex. \"Anna Berg|ordförande|elected\"".into(),
        FactType::Amount => "ett belopp i kronor, 8000 eller 8 000,50".into(),
        FactType::CaseNumber => "ett diarienummer, t.ex. LJ2012/896".into(),
        FactType::Minutes => "ORGAN|DATUM|§, t.ex. \"Planeringsdelegationen|2012-08-14|§ 100\"".into(),
        FactType::Document => "TITEL|SHA256 (64 hexsiffror: dokumentinnehållets hash)".into(),
        FactType::Text => "fritext".into(),
        FactType::Choice(options) => format!("ett av: {}", options.join(", ")),
        FactType::Email => "en e-postadress, namn@kommun.se, eller NAMN|ADRESS för att ange vems den är".into(),
        FactType::Phone => "ett telefonnummer, 08-123 456 78 eller +46 8 123 456 78, eller NAMN|NUMMER för att ange vems det är".into(),
    }
}

/// `s` quoted for a message, at most [`engine::limits::SHOWN_INPUT_CHARS_MAX`]
/// characters of it: what the user typed is named, but a 100 KB argument
/// is not repeated whole.
pub fn quoted(s: &str) -> String {
    let shown = shortened(s);
    if shown.len() < s.len() {
        format!("{shown:?}... ({} bytes)", s.len())
    } else {
        format!("{s:?}")
    }
}

/// The first [`engine::limits::SHOWN_INPUT_CHARS_MAX`] characters of `s`.
pub fn shortened(s: &str) -> &str {
    match s.char_indices().nth(engine::limits::SHOWN_INPUT_CHARS_MAX) {
        Some((cut, _)) => &s[..cut],
        None => s,
    }
}

/// Parses a civil date, naming what is wrong with one that does not exist.
pub fn parse_date(s: &str) -> Result<Date, String> {
    parse_date_said(s).map_err(|e| e.en)
}

/// [`parse_date`], saying what is wrong in both languages. A date is
/// written `YYYY-MM-DD` and nothing else (not `20120814`, not with a time),
/// in the years the Swedish calendar covers ([`crate::calendar::YEARS`]).
pub fn parse_date_said(s: &str) -> Result<Date, Bilingual> {
    let t = s.trim();
    let b = t.as_bytes();
    let form = b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && b.iter().enumerate().all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit());
    if !form {
        return Err(said(
            format!("{} är inget datum: skriv ÅÅÅÅ-MM-DD, t.ex. 2012-08-14", quoted(s)),
            format!("{} is not a real date: write YYYY-MM-DD, e.g. 2012-08-14", quoted(s)),
        ));
    }
    let number = |r: std::ops::Range<usize>| t[r].parse::<i16>().expect("digits only");
    let (year, month, day) = (number(0..4), number(5..7), number(8..10) as i8);
    let years = crate::calendar::YEARS;
    if !years.contains(&year) {
        return Err(said(
            format!("{}: året ska vara från {} till {}", quoted(s), years.start(), years.end()),
            format!("{} is not a real date here: the year must be {} to {}", quoted(s), years.start(), years.end()),
        ));
    }
    if !(1..=12).contains(&month) {
        return Err(said(
            format!("{} är inte ett datum som finns: månaden ska vara 01 till 12", quoted(s)),
            format!("{} is not a real date: the month must be 01 to 12", quoted(s)),
        ));
    }
    let days = Date::new(year, month as i8, 1).expect("a real month").days_in_month();
    Date::new(year, month as i8, day).ok().filter(|_| day >= 1).ok_or_else(|| {
        said(
            format!("{} är inte ett datum som finns: dagen ska vara 01 till {days}", quoted(s)),
            format!("{} is not a real date: the day must be 01 to {days}", quoted(s)),
        )
    })
}

fn parts(s: &str, n: usize) -> Option<Vec<&str>> {
    let v: Vec<&str> = s.split('|').map(str::trim).collect();
    (v.len() == n && v.iter().all(|x| !x.is_empty())).then_some(v)
}

/// Parses `raw` as a value of the fact's type.
pub fn parse(spec: &FactSpec, raw: &str) -> Result<FactValue, Bilingual> {
    let bad = || {
        said(
            format!("uppgiften {:?} ska vara {}; du angav: {}", spec.name, syntax_sv(&spec.ty), quoted(raw)),
            format!("fact {:?} must be {}; got {}", spec.name, syntax(&spec.ty), quoted(raw)),
        )
    };
    let bad_date =
        |e: Bilingual| said(format!("uppgiften {:?}: {}", spec.name, e.sv), format!("fact {:?}: {}", spec.name, e.en));
    let raw_t = raw.trim();
    if raw_t.is_empty() {
        return Err(bad());
    }
    Ok(match &spec.ty {
        FactType::Date => FactValue::Date(parse_date_said(raw_t).map_err(bad_date)?),
        FactType::Person => {
            let p = parts(raw_t, 3).ok_or_else(bad)?;
            let kind = match p[2].to_lowercase().as_str() {
                "elected" | "elected_member" | "förtroendevald" => PersonKind::ElectedMember,
                "official" | "tjänsteperson" | "tjänsteman" => PersonKind::Official,
                "other" | "övrig" => PersonKind::Other,
                _ => return Err(bad()),
            };
            FactValue::Person { name: p[0].into(), role: p[1].into(), kind }
        }
        FactType::Amount => FactValue::AmountSek { ore: parse_amount(raw_t).ok_or_else(bad)? },
        FactType::CaseNumber => FactValue::CaseNumber(raw_t.into()),
        FactType::Minutes => {
            let p = parts(raw_t, 3).ok_or_else(bad)?;
            let date = parse_date_said(p[1]).map_err(bad_date)?;
            FactValue::MinutesRef { body: p[0].into(), date, paragraph: p[2].into() }
        }
        FactType::Document => {
            let p = parts(raw_t, 2).ok_or_else(bad)?;
            if p[1].len() != 64 || !p[1].chars().all(|c| c.is_ascii_hexdigit()) {
                return Err(bad());
            }
            FactValue::Document { title: p[0].into(), sha256: p[1].to_lowercase().into() }
        }
        FactType::Text => FactValue::Text(raw.into()),
        FactType::Choice(options) => {
            // Case aside ("Konsultation" for "konsultation"), kept as the
            // definition spells it.
            let Some(option) = options
                .iter()
                .find(|o| *o == raw_t)
                .or_else(|| options.iter().find(|o| o.to_lowercase() == raw_t.to_lowercase()))
            else {
                return Err(bad());
            };
            FactValue::Choice(option.as_str().into())
        }
        FactType::Email => {
            let (whose, raw_t) = whose(raw_t);
            let ok = raw_t.split_once('@').is_some_and(|(l, d)| {
                !l.is_empty() && d.contains('.') && !d.starts_with('.') && !d.ends_with('.') && !d.contains('@')
            }) && !raw_t.contains(char::is_whitespace);
            if !ok {
                return Err(bad());
            }
            FactValue::Text(format!("{whose}{raw_t}").into())
        }
        FactType::Phone => {
            let (whose, raw_t) = whose(raw_t);
            let digits = raw_t.chars().filter(|c| c.is_ascii_digit()).count();
            let ok = (5..=20).contains(&digits)
                && raw_t.chars().all(|c| c.is_ascii_digit() || " +-()".contains(c))
                && !raw_t[1..].contains('+');
            if !ok {
                return Err(bad());
            }
            FactValue::Text(format!("{whose}{raw_t}").into())
        }
    })
}

/// `NAME|VALUE`: ("NAME|", "VALUE"); otherwise ("", value).
fn whose(raw: &str) -> (String, &str) {
    match raw.rsplit_once('|') {
        Some((name, v)) if !name.trim().is_empty() => (format!("{}|", name.trim()), v.trim()),
        _ => (String::new(), raw),
    }
}

/// The person a personal value names (`NAME|VALUE`), if it names one.
pub fn named_person(v: &FactValue) -> Option<&str> {
    match v {
        FactValue::Text(t) => t.rsplit_once('|').map(|(n, _)| n.trim()).filter(|n| !n.is_empty()),
        _ => None,
    }
}

/// "8000", "8 000", "8000,50", "8000.5", "8 000 kr" → öre.
fn parse_amount(s: &str) -> Option<i64> {
    let s = s.trim_end_matches("kr").trim().replace([' ', '\u{a0}'], "").replace(',', ".");
    let (whole, frac) = match s.split_once('.') {
        Some((w, f)) => (w, f),
        None => (s.as_str(), ""),
    };
    if whole.is_empty()
        || frac.len() > 2
        || !whole.chars().all(|c| c.is_ascii_digit())
        || !frac.chars().all(|c| c.is_ascii_digit())
    {
        return None;
    }
    let kr: i64 = whole.parse().ok()?;
    let ore: i64 = if frac.is_empty() { 0 } else { format!("{frac:0<2}").parse().ok()? };
    kr.checked_mul(100)?.checked_add(ore)
}

/// Whether a stored value has the type a spec asks for.
pub fn has_type(spec: &FactSpec, v: &FactValue) -> bool {
    match (&spec.ty, v) {
        (FactType::Date, FactValue::Date(_))
        | (FactType::Person, FactValue::Person { .. })
        | (FactType::Amount, FactValue::AmountSek { .. })
        | (FactType::CaseNumber, FactValue::CaseNumber(_))
        | (FactType::Minutes, FactValue::MinutesRef { .. })
        | (FactType::Document, FactValue::Document { .. })
        | (FactType::Text, FactValue::Text(_))
        | (FactType::Email, FactValue::Text(_))
        | (FactType::Phone, FactValue::Text(_)) => true,
        // Sealed personal data is checked before it is sealed.
        (_, FactValue::Sealed { .. }) => true,
        (FactType::Choice(options), FactValue::Choice(c)) => options.iter().any(|o| *o == *c),
        _ => false,
    }
}

/// The value as text, for comparing with a condition's `equals`.
pub fn as_text(v: &FactValue) -> String {
    match v {
        FactValue::Date(d) => d.to_string(),
        FactValue::Text(t) | FactValue::CaseNumber(t) | FactValue::Choice(t) => t.to_string(),
        FactValue::AmountSek { ore } => ore.to_string(),
        FactValue::Person { name, .. } => name.to_string(),
        FactValue::MinutesRef { body, date, paragraph } => format!("{body}|{date}|{paragraph}"),
        FactValue::Document { title, .. } => title.to_string(),
        FactValue::Sealed { .. } => String::new(),
    }
}
