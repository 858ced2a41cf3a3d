//! Rendering reports: a [`Document`] as text, Markdown, self-contained
//! HTML or CSV; the deadline model as iCalendar.

use projections::doc::{Block, Document};
use projections::Lang;
use std::fmt::Write;

/// Text for the terminal: tables as aligned columns when they fit in
/// `width`, otherwise one record per row.
pub fn text(d: &Document, width: usize) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "{}\n{}", d.title, "=".repeat(d.title.chars().count()));
    for m in &d.meta {
        let _ = writeln!(s, "{m}");
    }
    for b in &d.blocks {
        s.push('\n');
        match b {
            Block::Heading(h) => {
                let _ = writeln!(s, "{h}\n{}", "-".repeat(h.chars().count()));
            }
            Block::Subheading(h) => {
                let _ = writeln!(s, "{h}:");
            }
            Block::Paragraph(p) => {
                let _ = writeln!(s, "{p}");
            }
            Block::Verbatim(v) => {
                for line in v.lines() {
                    let _ = writeln!(s, "    {line}");
                }
            }
            Block::List(items) => {
                for i in items {
                    let _ = writeln!(s, "- {i}");
                }
            }
            Block::Table { headers, rows } => {
                let widths: Vec<usize> = (0..headers.len())
                    .map(|c| {
                        rows.iter().map(|r| r[c].chars().count()).chain([headers[c].chars().count()]).max().unwrap_or(0)
                    })
                    .collect();
                if widths.iter().sum::<usize>() + 2 * widths.len() <= width {
                    let line = |cells: &[String]| {
                        cells
                            .iter()
                            .zip(&widths)
                            .map(|(c, w)| format!("{c:<w$}"))
                            .collect::<Vec<_>>()
                            .join("  ")
                            .trim_end()
                            .to_string()
                    };
                    let _ = writeln!(s, "{}", line(headers));
                    let _ = writeln!(s, "{}", widths.iter().map(|w| "-".repeat(*w)).collect::<Vec<_>>().join("  "));
                    for r in rows {
                        let _ = writeln!(s, "{}", line(r));
                    }
                } else {
                    let hw = headers.iter().map(|h| h.chars().count()).max().unwrap_or(0);
                    for (i, r) in rows.iter().enumerate() {
                        if i > 0 {
                            s.push('\n');
                        }
                        for (h, c) in headers.iter().zip(r) {
                            if !c.is_empty() {
                                let _ = writeln!(s, "{h:<hw$}  {c}");
                            }
                        }
                    }
                }
                if rows.is_empty() {
                    let _ = writeln!(s, "(–)");
                }
            }
        }
    }
    s
}

fn md_cell(c: &str) -> String {
    c.replace('|', "\\|").replace('\n', "<br>")
}

pub fn markdown(d: &Document) -> String {
    // Text from the log shown, never run as HTML by a Markdown renderer.
    let d = &d.escaped_for_markdown();
    let mut s = format!("# {}\n\n", d.title);
    for m in &d.meta {
        let _ = writeln!(s, "{m}  ");
    }
    for b in &d.blocks {
        s.push('\n');
        match b {
            Block::Heading(h) => {
                let _ = writeln!(s, "## {h}");
            }
            Block::Subheading(h) => {
                let _ = writeln!(s, "### {h}");
            }
            Block::Paragraph(p) => {
                let _ = writeln!(s, "{p}");
            }
            Block::Verbatim(v) => {
                let _ = writeln!(s, "```\n{}```", if v.ends_with('\n') { v.clone() } else { format!("{v}\n") });
            }
            Block::List(items) => {
                for i in items {
                    let _ = writeln!(s, "- {}", md_cell(i));
                }
            }
            Block::Table { headers, rows } => {
                let _ = writeln!(s, "| {} |", headers.iter().map(|h| md_cell(h)).collect::<Vec<_>>().join(" | "));
                let _ = writeln!(s, "|{}|", headers.iter().map(|_| "---").collect::<Vec<_>>().join("|"));
                for r in rows {
                    let _ = writeln!(s, "| {} |", r.iter().map(|c| md_cell(c)).collect::<Vec<_>>().join(" | "));
                }
            }
        }
    }
    s
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// One self-contained, printable HTML file.
pub fn html(d: &Document, lang: Lang) -> String {
    let mut s = String::new();
    let _ = write!(
        s,
        "<!DOCTYPE html>\n<html lang=\"{}\">\n<head>\n<meta charset=\"utf-8\">\n<title>{}</title>\n<style>\n\
body{{font-family:system-ui,sans-serif;margin:2rem;line-height:1.4;color:#111}}\n\
table{{border-collapse:collapse;width:100%;margin:1rem 0;font-size:.9rem}}\n\
th,td{{border:1px solid #999;padding:.3rem .5rem;text-align:left;vertical-align:top}}\n\
th{{background:#eee}}\n.meta{{color:#333;font-size:.9rem}}\n\
@media print{{body{{margin:0}}th{{background:none}}}}\n</style>\n</head>\n<body>\n<main>\n",
        match lang {
            Lang::Sv => "sv",
            Lang::En => "en",
        },
        esc(&d.title),
    );
    s.push_str(&html_body(d));
    s.push_str("</main>\n</body>\n</html>\n");
    s
}

/// The document as an HTML fragment (its title as `h1`, then its blocks),
/// for a page that provides the rest: the web interface embeds it.
pub fn html_body(d: &Document) -> String {
    let mut s = format!("<h1>{}</h1>\n", esc(&d.title));
    for m in &d.meta {
        let _ = writeln!(s, "<p class=\"meta\">{}</p>", esc(m));
    }
    for b in &d.blocks {
        match b {
            Block::Heading(h) => {
                let _ = writeln!(s, "<h2>{}</h2>", esc(h));
            }
            Block::Subheading(h) => {
                let _ = writeln!(s, "<h3>{}</h3>", esc(h));
            }
            Block::Paragraph(p) => {
                let _ = writeln!(s, "<p>{}</p>", esc(p));
            }
            Block::Verbatim(v) => {
                let _ = writeln!(s, "<pre>{}</pre>", esc(v));
            }
            Block::List(items) => {
                let _ = writeln!(
                    s,
                    "<ul>{}</ul>",
                    items.iter().map(|i| format!("<li>{}</li>", esc(i))).collect::<String>()
                );
            }
            Block::Table { headers, rows } => {
                let _ = writeln!(
                    s,
                    "<table>\n<thead><tr>{}</tr></thead>\n<tbody>",
                    headers.iter().map(|h| format!("<th scope=\"col\">{}</th>", esc(h))).collect::<String>()
                );
                for r in rows {
                    let _ = writeln!(
                        s,
                        "<tr>{}</tr>",
                        r.iter().map(|c| format!("<td>{}</td>", esc(c))).collect::<String>()
                    );
                }
                let _ = writeln!(s, "</tbody>\n</table>");
            }
        }
    }
    s
}

/// The document's main table as CSV.
pub fn csv(d: &Document) -> anyhow::Result<String> {
    let mut w = ::csv::Writer::from_writer(Vec::new());
    if let Some((headers, rows)) = d.main_table() {
        w.write_record(headers)?;
        for r in rows {
            w.write_record(r)?;
        }
    }
    Ok(String::from_utf8(w.into_inner()?)?)
}

/// Deadlines as an iCalendar feed of all-day events.
pub fn ics(t: &projections::deadlines::Deadlines, lang: Lang) -> String {
    use icalendar::{Calendar, Component, EventLike};
    let mut cal = Calendar::new();
    cal.name(lang.t("styrlogg: tidsfrister", "styrlogg: deadlines"));
    for e in &t.entries {
        let day = chrono::NaiveDate::from_ymd_opt(
            e.last_day.year().into(),
            e.last_day.month() as u32,
            e.last_day.day() as u32,
        )
        .expect("a valid date");
        let mut description = format!("{}: {} ({})", lang.t("Instans", "Instance"), e.instance, e.organisation);
        if e.moved_to_weekday {
            description.push_str(&format!(
                "\n{} {} {}",
                lang.t("Flyttad från", "Moved from"),
                e.rule_date,
                lang.t("till närmaste vardag", "to the next weekday")
            ));
        }
        if let Some(r) = &e.escalate_to {
            description.push_str(&format!("\n{}: {r}", lang.t("Eskaleras till", "Escalates to")));
        }
        cal.push(
            icalendar::Event::new()
                // The date the rule gives, not the last day: an extended
                // deadline keeps its UID, so calendars update the event.
                .uid(&format!("{}-{}-{}@styrlogg", e.instance, e.step, e.rule_date))
                .starts(day)
                .ends(day.succ_opt().expect("a next day"))
                .summary(&format!("{}: {} ({})", lang.t("Sista dag", "Last day"), e.title, e.organisation))
                .description(&description)
                .done(),
        );
    }
    cal.done().to_string()
}
