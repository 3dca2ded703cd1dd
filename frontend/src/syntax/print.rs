//! Dockerfile text from a parsed [`Dockerfile`]: directives, then one line per instruction
//! (continuation lines joined, comments dropped) followed by its heredoc bodies. Parsing the
//! text gives the same instructions again (only positions differ).

use super::ast::Dockerfile;

impl Dockerfile {
    /// Prints the Dockerfile back as text that parses to the same instructions.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        for d in &self.directives {
            out.push_str(&format!("# {}={}\n", d.name, d.value));
        }
        for instr in &self.instructions {
            out.push_str(&instr.original);
            out.push('\n');
            for doc in &instr.heredocs {
                out.push_str(&doc.content);
                if !doc.content.is_empty() && !doc.content.ends_with('\n') {
                    out.push('\n');
                }
                out.push_str(&doc.name);
                out.push('\n');
            }
        }
        out
    }
}
