//! The Swedish calendar: public holidays (lag 1989:253), the next-weekday
//! rule for statutory deadlines (lag 1930:173), and counting days, weeks
//! and months from a date. jiff does the arithmetic; the rules are ours.

use jiff::civil::{Date, Weekday};
use jiff::ToSpan;

/// The years whose holidays are computed here, and so the years of every
/// date styrlogg takes as input.
pub const YEARS: std::ops::RangeInclusive<i16> = 1900..=2100;

/// Easter Sunday by the Gregorian computus (anonymous algorithm).
pub fn easter_sunday(year: i16) -> Date {
    let y = i32::from(year);
    let a = y % 19;
    let b = y / 100;
    let c = y % 100;
    let d = b / 4;
    let e = b % 4;
    let f = (b + 8) / 25;
    let g = (b - f + 1) / 3;
    let h = (19 * a + b - d - g + 15) % 30;
    let i = c / 4;
    let k = c % 4;
    let l = (32 + 2 * e + 2 * i - h - k) % 7;
    let m = (a + 11 * h + 22 * l) / 451;
    let month = (h + l - 7 * m + 114) / 31;
    let day = (h + l - 7 * m + 114) % 31 + 1;
    Date::new(year, month as i8, day as i8).expect("the computus yields a valid date")
}

/// The first date in `year`-`month` from `first_day` on that falls on `weekday`.
fn first_weekday_from(year: i16, month: i8, first_day: i8, weekday: Weekday) -> Date {
    let start = Date::new(year, month, first_day).expect("valid start");
    let ahead = (weekday.to_monday_zero_offset() - start.weekday().to_monday_zero_offset()).rem_euclid(7);
    start.checked_add(i64::from(ahead).days()).expect("in range")
}

/// Midsummer Day: the Saturday from 20 to 26 June.
pub fn midsummer_day(year: i16) -> Date {
    first_weekday_from(year, 6, 20, Weekday::Saturday)
}

/// All Saints' Day: the Saturday from 31 October to 6 November.
pub fn all_saints_day(year: i16) -> Date {
    first_weekday_from(year, 10, 31, Weekday::Saturday)
}

/// The public holidays of `year` with their Swedish names, in date order.
pub fn public_holidays(year: i16) -> Vec<(Date, &'static str)> {
    let d = |m: i8, day: i8| Date::new(year, m, day).expect("fixed holiday");
    let easter = easter_sunday(year);
    let rel = |days: i64| easter.checked_add(days.days()).expect("in range");
    let mut v = vec![
        (d(1, 1), "nyårsdagen"),
        (d(1, 6), "trettondedag jul"),
        (rel(-2), "långfredagen"),
        (easter, "påskdagen"),
        (rel(1), "annandag påsk"),
        (d(5, 1), "första maj"),
        (rel(39), "Kristi himmelsfärds dag"),
        (rel(49), "pingstdagen"),
        (d(6, 6), "Sveriges nationaldag"),
        (midsummer_day(year), "midsommardagen"),
        (all_saints_day(year), "alla helgons dag"),
        (d(12, 25), "juldagen"),
        (d(12, 26), "annandag jul"),
    ];
    v.sort();
    v
}

/// Whether `date` is a public holiday.
pub fn is_public_holiday(date: Date) -> bool {
    public_holidays(date.year()).iter().any(|(d, _)| *d == date)
}

/// Whether a deadline falling on `date` moves to the next weekday under lag
/// 1930:173: Saturdays, Sundays, public holidays, Midsummer Eve, Christmas
/// Eve and New Year's Eve.
pub fn is_non_working_day(date: Date) -> bool {
    let (m, d) = (date.month(), date.day());
    matches!(date.weekday(), Weekday::Saturday | Weekday::Sunday)
        || is_public_holiday(date)
        || date == midsummer_day(date.year()).yesterday().expect("in range")
        || (m == 12 && (d == 24 || d == 31))
}

/// The last day of a deadline ending on `date`, moved to the next weekday
/// when `date` is not one.
pub fn next_weekday_rule(mut date: Date) -> Date {
    while is_non_working_day(date) {
        date = date.tomorrow().expect("in range");
    }
    date
}

/// A length of time as lag 1930:173 counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Period {
    Days(i32),
    /// "N weeks from X" ends on the same weekday.
    Weeks(i32),
    /// "N months from X" ends on the same date, or the month's last day.
    Months(i32),
}

/// `from` plus `period`, before any next-weekday rule.
pub fn add(from: Date, period: Period) -> Date {
    let span = match period {
        Period::Days(n) => n.days(),
        Period::Weeks(n) => (n * 7).days(),
        // jiff clamps to the month's last day, as the law counts.
        Period::Months(n) => n.months(),
    };
    from.checked_add(span).expect("date arithmetic in range")
}
