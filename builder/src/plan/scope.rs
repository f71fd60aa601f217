//! `Scope`: the variables an instruction's expansion sees, with BuildKit's ARG rules:
//! global ARGs (before the first FROM) serve FROM lines and are visible inside a stage
//! only when re-declared there; a stage ARG takes its --build-arg value, else its
//! default; ENV shadows ARG; the platform ARGs are predeclared in the global scope.

use std::collections::{BTreeMap, BTreeSet};

use crate::shell::Env;

/// ARGs that need no ARG instruction to be given with --build-arg (nor count as unused).
pub const PREDEFINED: &[&str] = &[
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "FTP_PROXY",
    "ftp_proxy",
    "NO_PROXY",
    "no_proxy",
    "ALL_PROXY",
    "all_proxy",
];

/// Where an ARG's value came from, for the outline.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ArgSource {
    BuildArg,
    Default,
    Global,
    Platform,
    /// Declared without a value anywhere: unset.
    Unset,
}

#[derive(Clone, Debug, Default)]
pub struct Scope {
    /// ARG values in declaration order (a later one with the same name wins).
    args: Vec<(String, String)>,
    env: Vec<(String, String)>,
}

impl Scope {
    pub fn set_arg(&mut self, name: &str, value: &str) {
        self.args.retain(|(k, _)| k != name);
        self.args.push((name.to_string(), value.to_string()));
    }

    pub fn set_env(&mut self, name: &str, value: &str) {
        self.env.retain(|(k, _)| k != name);
        self.env.push((name.to_string(), value.to_string()));
    }

    /// The ARGs with a value, in declaration order.
    pub fn args(&self) -> &[(String, String)] {
        &self.args
    }

    pub fn env(&self) -> &[(String, String)] {
        &self.env
    }

    /// A stage starts from its base stage's ENV (configs carry ENV, never ARG).
    pub fn inherit_env(&mut self, from: &Scope) {
        self.env = from.env.clone();
    }
}

impl Env for Scope {
    fn get(&self, name: &str) -> Option<&str> {
        self.env
            .iter()
            .chain(self.args.iter())
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// The --build-arg values, and which of them an ARG instruction consumed.
#[derive(Debug, Default)]
pub struct BuildArgs {
    values: BTreeMap<String, String>,
    consumed: BTreeSet<String>,
}

impl BuildArgs {
    pub fn new(values: BTreeMap<String, String>) -> BuildArgs {
        BuildArgs {
            values,
            consumed: BTreeSet::new(),
        }
    }

    /// The value given for `name`, marking it consumed.
    pub fn take(&mut self, name: &str) -> Option<String> {
        let value = self.values.get(name).cloned();
        if value.is_some() {
            self.consumed.insert(name.to_string());
        }
        value
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }

    /// Build args no ARG instruction declared (predefined proxy ARGs aside).
    pub fn unused(&self) -> Vec<String> {
        self.values
            .keys()
            .filter(|k| !self.consumed.contains(*k) && !PREDEFINED.contains(&k.as_str()))
            .cloned()
            .collect()
    }
}
