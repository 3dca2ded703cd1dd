//! Canonical JSON: object keys sorted, no insignificant whitespace (OLPC canonical form), so
//! the same value always gives the same bytes and the same digest.

use serde::Serialize;

use crate::error::{Error, Result};

/// Serializes `value` as canonical JSON bytes. `what` names the document in errors.
pub fn to_canonical_vec<T: Serialize + ?Sized>(value: &T, what: &str) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut ser =
        serde_json::Serializer::with_formatter(&mut out, olpc_cjson::CanonicalFormatter::new());
    value.serialize(&mut ser).map_err(|source| Error::Json { what: what.to_string(), source })?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn keys_sorted_and_compact() {
        let mut m = HashMap::new();
        for k in ["zeta", "alpha", "mid", "Beta"] {
            m.insert(k, vec![1, 2]);
        }
        let out = to_canonical_vec(&m, "test").unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"Beta":[1,2],"alpha":[1,2],"mid":[1,2],"zeta":[1,2]}"#
        );
    }
}
