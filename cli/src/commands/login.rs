//! `kiln login` / `kiln logout`: credentials in ~/.docker/config.json, checked against
//! the registry before they are saved.

use std::io::{IsTerminal, Read};

use anyhow::{Context, Result, bail};
use kiln_registry::client::{Client, ClientError, Credentials, DockerConfig, Repository, api_host};

use super::transfer::{RegistryFlags, client_options, runtime};

/// Log in to a registry
///
/// Checks the credentials against the registry (Basic auth, or the token flow when the
/// registry asks for it) and saves them in the docker-style credentials file, in the
/// `auths` form docker, podman and skopeo read.
///
/// Without -u or --password-stdin, kiln asks on the terminal (the password unechoed).
///
/// Example:  printf '%s' "$PASSWORD" | kiln login -u ci --password-stdin registry.lan:5000
#[derive(clap::Args)]
#[command(verbatim_doc_comment)]
pub struct LoginArgs {
    /// The registry (host[:port]) [default: docker.io]
    registry: Option<String>,

    /// User name [default: asked on the terminal]
    #[arg(short, long)]
    username: Option<String>,

    /// Password (visible in the process list: prefer --password-stdin)
    #[arg(short, long, conflicts_with = "password_stdin")]
    password: Option<String>,

    /// Read the password from standard input
    #[arg(long)]
    password_stdin: bool,

    #[command(flatten)]
    registry_flags: RegistryFlags,
}

/// Log out of a registry
///
/// Removes the registry's credentials from the credentials file.
///
/// Example:  kiln logout registry.lan:5000
#[derive(clap::Args)]
#[command(verbatim_doc_comment)]
pub struct LogoutArgs {
    /// The registry (host[:port]) [default: docker.io]
    registry: Option<String>,

    /// Credentials file [default: $DOCKER_CONFIG/config.json or ~/.docker/config.json]
    #[arg(long, value_name = "FILE", env = "KILN_AUTHFILE")]
    authfile: Option<std::path::PathBuf>,
}

/// `https://host:5000/` → `host:5000`; nothing → docker.io.
fn registry_name(given: Option<&str>) -> Result<String> {
    let Some(given) = given else {
        return Ok("docker.io".into());
    };
    let name = given
        .strip_prefix("https://")
        .or_else(|| given.strip_prefix("http://"))
        .unwrap_or(given)
        .trim_end_matches('/');
    if name.is_empty() || name.contains('/') {
        bail!("{given:?} is not a registry host (expected host or host:port)");
    }
    Ok(name.to_string())
}

pub fn login(args: LoginArgs) -> Result<()> {
    let registry = registry_name(args.registry.as_deref())?;
    let terminal = std::io::stdin().is_terminal();
    let username = match args.username {
        Some(u) => u,
        None if terminal && !args.password_stdin => {
            eprint!("Username: ");
            let mut line = String::new();
            std::io::stdin()
                .read_line(&mut line)
                .context("reading the user name")?;
            line.trim().to_string()
        }
        None => bail!("give the user name with -u USER"),
    };
    if username.is_empty() {
        bail!("the user name is empty");
    }
    let password = match (args.password, args.password_stdin) {
        (Some(p), _) => p,
        (None, true) => {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .context("reading the password from standard input")?;
            text.trim_end_matches(['\n', '\r']).to_string()
        }
        (None, false) if terminal => {
            rpassword::prompt_password("Password: ").context("reading the password")?
        }
        (None, false) => bail!("give the password with --password-stdin (or --password)"),
    };
    if password.is_empty() {
        bail!("the password is empty");
    }
    let credentials = Credentials { username, password };
    let host = api_host(&registry).to_string();
    let options = client_options(&args.registry_flags, &[&host])?;
    let auth_file = options.auth_file.clone();
    let mut client = Client::new(options)?;
    client.set_credentials(&host, &credentials);
    match runtime()?.block_on(Repository::ping(&client, &host)) {
        // Nothing is stored yet: the registry refused what was given here.
        Err(ClientError::Unauthorized { host, message, .. }) => {
            bail!(
                "{host} refused the user name and password given for {username:?}: {message}",
                username = credentials.username
            )
        }
        other => other?,
    }
    let mut config = DockerConfig::load(&auth_file)?;
    config.set(&registry, &credentials);
    config.save()?;
    eprintln!("Credentials saved in {}", config.path().display());
    println!("Login Succeeded");
    Ok(())
}

pub fn logout(args: LogoutArgs) -> Result<()> {
    let registry = registry_name(args.registry.as_deref())?;
    let path = args.authfile.unwrap_or_else(DockerConfig::default_path);
    let mut config = DockerConfig::load(&path)?;
    if config.remove(&registry) {
        config.save()?;
        println!("Removing login credentials for {registry}");
    } else {
        println!("Not logged in to {registry}");
    }
    Ok(())
}
