//! "Did you mean ...?" suggestions.

/// Edit distance between `a` and `b`, counting a swap of two neighbours as one edit
/// (case-insensitive).
fn distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.to_lowercase().chars().collect();
    let b: Vec<char> = b.to_lowercase().chars().collect();
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut v = (d[i - 1][j] + 1).min(d[i][j - 1] + 1).min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                v = v.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = v;
        }
    }
    d[a.len()][b.len()]
}

/// The candidate closest to `word`, if it is close enough to be a likely typo (a few edits
/// away, or a prefix of the candidate).
pub(crate) fn closest<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let len = word.chars().count();
    let limit = (len / 3).clamp(2, 3).min(len.saturating_sub(1));
    let lower = word.to_lowercase();
    candidates
        .into_iter()
        .filter_map(|c| {
            let d = distance(word, c);
            let prefix = len >= 3 && c.to_lowercase().starts_with(&lower);
            (d <= limit || prefix).then_some((if prefix { 0 } else { d }, c))
        })
        .min_by_key(|&(d, _)| d)
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_close_words_only() {
        let kws = ["COPY", "CMD", "FROM", "ENTRYPOINT", "WORKDIR"];
        assert_eq!(closest("CPOY", kws), Some("COPY"));
        assert_eq!(closest("form", kws), Some("FROM"));
        assert_eq!(closest("entrypiont", kws), Some("ENTRYPOINT"));
        assert_eq!(closest("WORKDIRR", kws), Some("WORKDIR"));
        assert_eq!(closest("apt-get", kws), None);
        assert_eq!(closest("chwon", ["chown", "chmod", "from"]), Some("chown"));
        assert_eq!(closest("plat", ["platform"]), Some("platform"));
        assert_eq!(closest("mnt", ["mount", "network"]), Some("mount"));
        assert_eq!(closest("x", ["ADD", "ARG"]), None);
        assert_eq!(closest("ab", ["ADD", "ARG"]), None);
    }
}
