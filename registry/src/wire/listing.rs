//! The two listings: `GET /v2/<name>/tags/list` answers a `TagList`, `GET /v2/_catalog` a
//! `Catalog`, one page of each at a time.

use serde::{Deserialize, Serialize};

/// The most names one catalog page may ask for: Distribution's default (`maxentries`),
/// above which it answers 400 PAGINATION_NUMBER_INVALID, as kiln's server does.
pub const CATALOG_PAGE_LIMIT: usize = 1000;

/// `{"name": …, "tags": […]}`. Registries answer `"tags": null` for a repository with
/// none; that reads as an empty list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TagList {
    pub name: String,
    #[serde(default, deserialize_with = "null_is_empty")]
    pub tags: Vec<String>,
}

/// `{"repositories": […]}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Catalog {
    #[serde(default, deserialize_with = "null_is_empty")]
    pub repositories: Vec<String>,
}

impl TagList {
    pub fn new(name: &str, tags: &[String]) -> TagList {
        TagList {
            name: name.to_string(),
            tags: tags.to_vec(),
        }
    }
}

impl Catalog {
    pub fn new(repositories: &[String]) -> Catalog {
        Catalog {
            repositories: repositories.to_vec(),
        }
    }
}

fn null_is_empty<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    Ok(Option::<Vec<String>>::deserialize(d)?.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listings_round_trip_and_read_null_as_empty() {
        let tags = TagList {
            name: "a/b".into(),
            tags: vec!["1".into(), "latest".into()],
        };
        let json = serde_json::to_value(&tags).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"name": "a/b", "tags": ["1", "latest"]})
        );
        assert_eq!(serde_json::from_value::<TagList>(json).unwrap(), tags);
        let none: TagList = serde_json::from_str(r#"{"name":"a","tags":null}"#).unwrap();
        assert!(none.tags.is_empty());

        let catalog = Catalog {
            repositories: vec!["a".into(), "b/c".into()],
        };
        let json = serde_json::to_value(&catalog).unwrap();
        assert_eq!(json, serde_json::json!({"repositories": ["a", "b/c"]}));
        assert_eq!(serde_json::from_value::<Catalog>(json).unwrap(), catalog);
        let empty: Catalog = serde_json::from_str("{}").unwrap();
        assert!(empty.repositories.is_empty());
    }
}
