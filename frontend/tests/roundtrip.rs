//! `parse → print → parse` is stable: printing a parsed Dockerfile and parsing the text again
//! gives the same instructions (flags, arguments, forms, heredocs; only positions differ), and
//! printing is idempotent. Checked on the conformance files and on random token soup
//! (proptest, bounded number of cases).

use std::path::Path;

use kiln_frontend::syntax::{Dockerfile, JsonDockerfile, parse};
use proptest::prelude::*;

/// The parse result without positions.
fn shape(df: &Dockerfile) -> JsonDockerfile {
    let mut j = df.to_json();
    for i in &mut j.instructions {
        i.line = 0;
        i.end_line = 0;
    }
    j
}

/// Checks the round trip of `text` if it parses.
fn round_trip(text: &str) -> Result<(), String> {
    let Ok(df) = parse("Dockerfile", text) else { return Ok(()) };
    let printed = df.to_text();
    let again = parse("Dockerfile", &printed).map_err(|e| {
        format!("printed text does not parse: {e}\n--- input\n{text:?}\n--- printed\n{printed:?}")
    })?;
    if shape(&again) != shape(&df) {
        return Err(format!(
            "round trip changed the instructions\n--- input\n{text:?}\n--- printed\n{printed:?}\n--- first\n{:#?}\n--- again\n{:#?}",
            shape(&df),
            shape(&again)
        ));
    }
    if again.to_text() != printed {
        return Err(format!("printing is not idempotent for {text:?}"));
    }
    Ok(())
}

#[test]
fn conformance_files_round_trip() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/conformance");
    let mut n = 0;
    for entry in std::fs::read_dir(dir).expect("conformance dir") {
        let path = entry.expect("entry").path();
        let text = std::fs::read_to_string(&path).expect("read");
        round_trip(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        n += 1;
    }
    assert!(n >= 15);
}

#[test]
fn printed_text_is_normalized() {
    let df = parse(
        "Dockerfile",
        "# syntax=x\n\n  from busybox\nRUN a \\\n# c\n  b\nCOPY <<-EOF /x\n\thi\n\tEOF\n",
    )
    .expect("parses");
    assert_eq!(df.to_text(), "# syntax=x\nfrom busybox\nRUN a   b\nCOPY <<-EOF /x\n\thi\nEOF\n");
}

const TOKENS: &[&str] = &[
    "FROM busybox",
    "FROM scratch AS s",
    "RUN",
    "ADD",
    "COPY",
    "ENV",
    "ARG",
    "LABEL",
    "CMD",
    "ENTRYPOINT",
    "SHELL",
    "HEALTHCHECK",
    "ONBUILD",
    "VOLUME",
    "EXPOSE",
    "WORKDIR",
    "USER",
    "--mount=type=cache,target=/c",
    "--from=s",
    "--link",
    "--chmod=u+x",
    "--network=none",
    "<<EOF",
    "<<-EOF",
    "<<'Q'",
    "EOF",
    "\tEOF",
    "Q",
    "[\"a\", \"b\"]",
    "['x']",
    "a=b",
    "k=\"v w\"",
    "$X",
    "${X:-y}",
    "\\",
    "`",
    "#",
    "# escape=`",
    "# syntax=x",
    "\"",
    "'",
    " ",
    "\t",
    "\n",
    "\n",
    "\r\n",
    "é",
    "NONE",
    "CMD",
    "AS",
];

fn soup() -> impl Strategy<Value = String> {
    proptest::collection::vec(proptest::sample::select(TOKENS), 0..40)
        .prop_map(|parts| parts.join(""))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, ..ProptestConfig::default() })]

    #[test]
    fn token_soup_round_trips(text in soup()) {
        if let Err(e) = round_trip(&text) {
            prop_assert!(false, "{}", e);
        }
    }

    #[test]
    fn arbitrary_text_never_panics_and_round_trips(text in any::<String>()) {
        if let Err(e) = round_trip(&text) {
            prop_assert!(false, "{}", e);
        }
    }
}
