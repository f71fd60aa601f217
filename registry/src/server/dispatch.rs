//! `Route`: which API a `/v2/…` path asks for. Repository names may hold any number of
//! `/`, so the path is read from the right: the last one to three segments say what is
//! wanted, and everything before them is the name.

#[derive(Debug, PartialEq, Eq)]
pub enum Route<'a> {
    Base,
    Catalog,
    Referrers {
        name: &'a str,
        digest: &'a str,
    },
    Tags {
        name: &'a str,
    },
    Manifest {
        name: &'a str,
        reference: &'a str,
    },
    Blob {
        name: &'a str,
        digest: &'a str,
    },
    /// `POST /v2/<name>/blobs/uploads/`
    Uploads {
        name: &'a str,
    },
    Upload {
        name: &'a str,
        id: &'a str,
    },
    NotFound,
}

pub fn route(path: &str) -> Route<'_> {
    let Some(rest) = path.strip_prefix("/v2/") else {
        return if path == "/v2" {
            Route::Base
        } else {
            Route::NotFound
        };
    };
    if rest.is_empty() {
        return Route::Base;
    }
    if rest == "_catalog" {
        return Route::Catalog;
    }
    // (suffix, constructor) from the most specific to the least.
    if let Some(name) = rest.strip_suffix("/tags/list") {
        return Route::Tags { name };
    }
    if let Some(name) = rest
        .strip_suffix("/blobs/uploads/")
        .or_else(|| rest.strip_suffix("/blobs/uploads"))
    {
        return Route::Uploads { name };
    }
    let Some((head, last)) = rest.rsplit_once('/') else {
        return Route::NotFound;
    };
    if let Some(name) = head.strip_suffix("/blobs/uploads") {
        return Route::Upload { name, id: last };
    }
    if let Some(name) = head.strip_suffix("/blobs") {
        return Route::Blob { name, digest: last };
    }
    if let Some(name) = head.strip_suffix("/referrers") {
        return Route::Referrers { name, digest: last };
    }
    if let Some(name) = head.strip_suffix("/manifests") {
        return Route::Manifest {
            name,
            reference: last,
        };
    }
    Route::NotFound
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_with_slashes_parse_from_the_right() {
        assert_eq!(route("/v2/"), Route::Base);
        assert_eq!(route("/v2"), Route::Base);
        assert_eq!(route("/v2/a/b/c/tags/list"), Route::Tags { name: "a/b/c" });
        assert_eq!(
            route("/v2/a/b/manifests/latest"),
            Route::Manifest {
                name: "a/b",
                reference: "latest"
            }
        );
        assert_eq!(
            route("/v2/x/blobs/blobs/sha256:ab"),
            Route::Blob {
                name: "x/blobs",
                digest: "sha256:ab"
            }
        );
        assert_eq!(
            route("/v2/team/app/blobs/uploads/"),
            Route::Uploads { name: "team/app" }
        );
        assert_eq!(
            route("/v2/team/app/blobs/uploads/0123"),
            Route::Upload {
                name: "team/app",
                id: "0123"
            }
        );
        assert_eq!(
            route("/v2/m/manifests/manifests/v1"),
            Route::Manifest {
                name: "m/manifests",
                reference: "v1"
            }
        );
        assert_eq!(route("/v2/_catalog"), Route::Catalog);
        assert_eq!(
            route("/v2/a/b/referrers/sha256:cd"),
            Route::Referrers {
                name: "a/b",
                digest: "sha256:cd"
            }
        );
        assert_eq!(route("/v3/x"), Route::NotFound);
        assert_eq!(route("/v2/justaname"), Route::NotFound);
    }
}
