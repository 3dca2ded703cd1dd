//! `Diagnostic::render`: the `FILE:LINE:COL: message` line, the offending line and a caret.

use kiln_frontend::diag::{Diagnostic, Span};
use kiln_frontend::syntax::parse;

#[test]
fn renders_line_and_caret_under_the_span() {
    let text = "FROM a\nCOPY --chwon=1 a b\n";
    let e = parse("Dockerfile", text).unwrap_err();
    assert_eq!(
        e.render(text),
        "Dockerfile:2:6: COPY: unknown flag --chwon; did you mean --chown?\n  |\n2 | COPY --chwon=1 a b\n  |      ^~~~~~~~~"
    );
}

#[test]
fn tabs_keep_the_caret_aligned_and_wide_gutters() {
    let mut text = "FROM a\n".repeat(11);
    text.push_str("\tRUN\t--network=bridge x\n");
    let e = parse("Dockerfile", &text).unwrap_err();
    assert_eq!(
        e.render(&text),
        "Dockerfile:12:6: RUN: invalid --network value \"bridge\"; use default, none, host\n   |\n12 | \tRUN\t--network=bridge x\n   | \t   \t^~~~~~~~~~~~~~~~"
    );
}

#[test]
fn multi_line_spans_get_one_caret_and_placeless_ones_no_source() {
    let d =
        Diagnostic::warning("Dockerfile", Span { line: 1, col: 3, end_line: 2, end_col: 4 }, "w")
            .in_instruction("RUN");
    assert_eq!(
        d.render("RUN a \\\n  b\n"),
        "Dockerfile:1:3: warning: RUN: w\n  |\n1 | RUN a \\\n  |   ^"
    );
    let d = Diagnostic::error("Dockerfile", Span::default(), "--target \"x\": no stage");
    assert_eq!(d.render("FROM a\n"), "--target \"x\": no stage");
    let d = Diagnostic::error("Dockerfile", Span::on_line(9, 1, 1), "past the end");
    assert_eq!(d.render("FROM a\n"), "Dockerfile:9:1: past the end");
    // A CRLF file and a BOM on the first line are not shown.
    let d = Diagnostic::error("Dockerfile", Span::on_line(1, 1, 4), "x");
    assert_eq!(d.render("\u{feff}FROM a\r\n"), "Dockerfile:1:1: x\n  |\n1 | FROM a\n  | ^~~~");
}
