//! The Swedish calendar against known dates and a table of deadline cases.

use jiff::civil::{date, Date, Weekday};
use workflows::calendar::{self, Period};

#[test]
fn easter_matches_known_dates() {
    let known = [
        (1900, date(1900, 4, 15)),
        (2000, date(2000, 4, 23)),
        (2012, date(2012, 4, 8)),
        (2013, date(2013, 3, 31)),
        (2014, date(2014, 4, 20)),
        (2015, date(2015, 4, 5)),
        (2016, date(2016, 3, 27)),
        (2017, date(2017, 4, 16)),
        (2024, date(2024, 3, 31)),
        (2100, date(2100, 3, 28)),
    ];
    for (year, easter) in known {
        assert_eq!(calendar::easter_sunday(year), easter, "Easter {year}");
    }
}

#[test]
fn movable_holidays_hold_their_rules_for_every_year_1900_to_2100() {
    for year in 1900..=2100i16 {
        let easter = calendar::easter_sunday(year);
        assert_eq!(easter.weekday(), Weekday::Sunday, "{year}");
        assert!(easter >= date(year, 3, 22) && easter <= date(year, 4, 25), "{year}: {easter}");
        let midsummer = calendar::midsummer_day(year);
        assert_eq!(midsummer.weekday(), Weekday::Saturday);
        assert!((20..=26).contains(&midsummer.day()) && midsummer.month() == 6);
        let saints = calendar::all_saints_day(year);
        assert_eq!(saints.weekday(), Weekday::Saturday);
        assert!(saints >= date(year, 10, 31) && saints <= date(year, 11, 6));
        assert_eq!(calendar::public_holidays(year).len(), 13, "{year}");
    }
}

#[test]
fn holidays_of_2012() {
    let names: Vec<(Date, &str)> = calendar::public_holidays(2012);
    let expected = [
        (date(2012, 1, 1), "nyårsdagen"),
        (date(2012, 1, 6), "trettondedag jul"),
        (date(2012, 4, 6), "långfredagen"),
        (date(2012, 4, 8), "påskdagen"),
        (date(2012, 4, 9), "annandag påsk"),
        (date(2012, 5, 1), "första maj"),
        (date(2012, 5, 17), "Kristi himmelsfärds dag"),
        (date(2012, 5, 27), "pingstdagen"),
        (date(2012, 6, 6), "Sveriges nationaldag"),
        (date(2012, 6, 23), "midsommardagen"),
        (date(2012, 11, 3), "alla helgons dag"),
        (date(2012, 12, 25), "juldagen"),
        (date(2012, 12, 26), "annandag jul"),
    ];
    assert_eq!(names, expected);
}

#[test]
fn next_weekday_rule_table() {
    let cases = [
        (date(2012, 10, 15), date(2012, 10, 15), "an ordinary Monday stays"),
        (date(2012, 10, 13), date(2012, 10, 15), "Saturday moves to Monday"),
        (date(2012, 10, 14), date(2012, 10, 15), "Sunday moves to Monday"),
        (date(2012, 6, 22), date(2012, 6, 25), "Midsummer Eve (Friday) moves past Midsummer Day"),
        (date(2012, 6, 23), date(2012, 6, 25), "Midsummer Day"),
        (date(2012, 12, 24), date(2012, 12, 27), "Christmas Eve, Christmas Day and Boxing Day"),
        (date(2012, 12, 31), date(2013, 1, 2), "New Year's Eve and New Year's Day"),
        (date(2013, 3, 29), date(2013, 4, 2), "Good Friday to Easter Monday"),
        (date(2012, 5, 17), date(2012, 5, 18), "Ascension Day"),
        (date(2014, 6, 6), date(2014, 6, 9), "National Day on a Friday"),
        (date(2012, 11, 3), date(2012, 11, 5), "All Saints' Day"),
        (date(2015, 1, 6), date(2015, 1, 7), "Epiphany on a Tuesday"),
        (date(2016, 5, 1), date(2016, 5, 2), "May Day on a Sunday"),
    ];
    for (last_day, moved, why) in cases {
        assert_eq!(calendar::next_weekday_rule(last_day), moved, "{why}");
    }
}

#[test]
fn periods_count_as_the_law_counts() {
    let cases = [
        (date(2012, 8, 14), Period::Days(14), date(2012, 8, 28)),
        (date(2012, 8, 14), Period::Weeks(3), date(2012, 9, 4)),
        (date(2012, 1, 31), Period::Months(1), date(2012, 2, 29)),
        (date(2013, 1, 31), Period::Months(1), date(2013, 2, 28)),
        (date(2012, 8, 31), Period::Months(1), date(2012, 9, 30)),
        (date(2012, 12, 15), Period::Months(1), date(2013, 1, 15)),
    ];
    for (from, period, end) in cases {
        let got = calendar::add(from, period);
        assert_eq!(got, end, "{from} + {period:?}");
        if let Period::Weeks(_) = period {
            assert_eq!(got.weekday(), from.weekday(), "weeks end on the same weekday");
        }
    }
}
