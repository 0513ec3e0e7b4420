//! `spate profile`: named connection profiles, as `rpk profile` keeps them: the brokers, the
//! schema registry URL and the security settings of a cluster, stored once and used by every
//! command.
//!
//! Profiles live in one TOML file, `$XDG_CONFIG_HOME/spate/profiles.toml` (else
//! `~/.config/spate/profiles.toml`), with the current profile's name at the top. A command
//! takes each setting from its flag or `SPATE_...` environment variable first, then from the
//! profile (`--profile NAME` / `SPATE_PROFILE`, else the current one), then from the built-in
//! default. Security settings come as a set: when the flags or environment name a security
//! protocol, none of the profile's security settings are used.
//!
//! Passwords are not written unless asked (`--save-passwords`): by default a profile holds the
//! user names and commands read the passwords from `SPATE_SASL_PASSWORD` and
//! `SPATE_REGISTRY_PASSWORD`. The file is written with mode 0600 either way, atomically
//! (a temporary file renamed over it).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

use super::client_args::print;

/// The profile chosen with `--profile` or `SPATE_PROFILE`, set once by `main`.
static SELECTED: OnceLock<Option<String>> = OnceLock::new();

/// Records the profile `--profile` / `SPATE_PROFILE` names (called once, by `main`).
pub fn select(name: Option<String>) {
    let _ = SELECTED.set(name.filter(|n| !n.is_empty()));
}

/// One profile: where a cluster is and how to reach it. The file format (kebab-case keys);
/// every field is optional.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct Profile {
    /// Bootstrap brokers, `HOST:PORT` each.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub brokers: Vec<String>,
    /// Schema registry URL.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub registry: Option<String>,
    /// User for the registry's basic authentication.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub registry_user: Option<String>,
    /// The registry password, only when saved on request.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub registry_password: Option<String>,
    /// PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub security_protocol: Option<String>,
    /// SCRAM-SHA-512, SCRAM-SHA-256 or PLAIN.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sasl_mechanism: Option<String>,
    /// SASL user name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sasl_username: Option<String>,
    /// The SASL password, only when saved on request.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sasl_password: Option<String>,
    /// PEM file of the CAs that sign the brokers' certificates.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_ca_file: Option<PathBuf>,
    /// PEM client certificate.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_cert_file: Option<PathBuf>,
    /// PEM private key of the client certificate.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_key_file: Option<PathBuf>,
}

/// The profiles file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct ProfileFile {
    /// The profile commands use when none is named.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub current: Option<String>,
    /// Profiles by name.
    pub profiles: BTreeMap<String, Profile>,
}

/// Where the profiles file is: `$XDG_CONFIG_HOME/spate/profiles.toml`, else
/// `$HOME/.config/spate/profiles.toml`.
pub fn file_path() -> anyhow::Result<PathBuf> {
    let non_empty = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
    if let Some(dir) = non_empty("XDG_CONFIG_HOME") {
        return Ok(PathBuf::from(dir).join("spate").join("profiles.toml"));
    }
    match non_empty("HOME") {
        Some(home) => Ok(PathBuf::from(home)
            .join(".config")
            .join("spate")
            .join("profiles.toml")),
        None => bail!("neither XDG_CONFIG_HOME nor HOME is set: cannot find the profiles file"),
    }
}

impl ProfileFile {
    /// Reads the file; a missing file is an empty one.
    pub fn load(path: &Path) -> anyhow::Result<ProfileFile> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(ProfileFile::default()),
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        };
        toml::from_str(&text)
            .with_context(|| format!("{} is not a valid profiles file", path.display()))
    }

    /// Writes the file atomically, readable by its owner only.
    pub fn save(&self, path: &Path) -> anyhow::Result<()> {
        let dir = path
            .parent()
            .context("the profiles file has no parent directory")?;
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let text = toml::to_string_pretty(self).context("cannot write the profiles as TOML")?;
        let temp = path.with_extension("toml.tmp");
        {
            use std::io::Write;
            use std::os::unix::fs::OpenOptionsExt;
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&temp)
                .with_context(|| format!("cannot write {}", temp.display()))?;
            file.write_all(
                b"# spate connection profiles (spate profile --help); passwords only if saved on request\n",
            )
            .and_then(|()| file.write_all(text.as_bytes()))
            .and_then(|()| file.sync_all())
            .with_context(|| format!("cannot write {}", temp.display()))?;
        }
        std::fs::rename(&temp, path)
            .with_context(|| format!("cannot replace {}", path.display()))?;
        Ok(())
    }
}

/// The profile commands use: the one `--profile`/`SPATE_PROFILE` names (which must exist),
/// else the current one, else none.
pub fn active() -> anyhow::Result<Option<(String, Profile)>> {
    let selected = SELECTED.get().cloned().flatten();
    let path = file_path();
    let file = match (&path, &selected) {
        (Ok(path), _) => ProfileFile::load(path)?,
        // Without a home there is no file; only a named profile makes that an error.
        (Err(_), None) => return Ok(None),
        (Err(e), Some(_)) => bail!("{e}"),
    };
    let (name, explicit) = match (selected, &file.current) {
        (Some(name), _) => (name, true),
        (None, Some(current)) => (current.clone(), false),
        (None, None) => return Ok(None),
    };
    match file.profiles.get(&name) {
        Some(profile) => Ok(Some((name, profile.clone()))),
        None if explicit => bail!(
            "no profile named {name:?} in {}; see `spate profile list`",
            path.map(|p| p.display().to_string()).unwrap_or_default()
        ),
        None => bail!(
            "the current profile {name:?} is not in {}; pick another with `spate profile use`",
            path.map(|p| p.display().to_string()).unwrap_or_default()
        ),
    }
}

/// Arguments of `spate profile`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Profiles are kept in $XDG_CONFIG_HOME/spate/profiles.toml \
    (or ~/.config/spate/profiles.toml). Flags and SPATE_* environment variables win over the \
    profile; --profile NAME or SPATE_PROFILE picks a profile other than the current one."
)]
pub struct ProfileArgs {
    #[command(subcommand)]
    command: ProfileCommand,
}

#[derive(Debug, clap::Subcommand)]
enum ProfileCommand {
    /// Create a profile and make it the current one.
    Create(CreateArgs),
    /// Make a profile the current one.
    Use(NameArg),
    /// List profiles; the current one is marked with *.
    List,
    /// Delete a profile.
    Delete(NameArg),
    /// Print the current profile's name and settings (passwords hidden).
    Current,
}

#[derive(Debug, clap::Args)]
struct NameArg {
    /// Profile name.
    name: String,
}

/// The settings of a new profile. No environment variables are read here, so a profile
/// holds what the command line says and nothing leaks in from the shell (except passwords,
/// and only with --save-passwords).
#[derive(Debug, clap::Args)]
struct CreateArgs {
    /// Profile name.
    name: String,
    /// Brokers to bootstrap from, HOST:PORT[,HOST:PORT...].
    #[arg(long, value_delimiter = ',', value_name = "HOST:PORT")]
    brokers: Vec<String>,
    /// Schema registry URL.
    #[arg(long, value_name = "URL")]
    registry: Option<String>,
    /// User for the registry's basic authentication.
    #[arg(long, value_name = "USER")]
    registry_user: Option<String>,
    /// PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL.
    #[arg(long, value_name = "PROTOCOL", value_parser = super::client_args::parse_protocol)]
    security_protocol: Option<spate_client::SecurityProtocol>,
    /// SCRAM-SHA-512, SCRAM-SHA-256 or PLAIN.
    #[arg(long, value_name = "MECHANISM", value_parser = super::client_args::parse_mechanism)]
    sasl_mechanism: Option<spate_client::SaslMechanism>,
    /// SASL user name.
    #[arg(long, value_name = "USER")]
    sasl_username: Option<String>,
    /// PEM file of the CAs that sign the brokers' certificates.
    #[arg(long, value_name = "PEM")]
    tls_ca_file: Option<PathBuf>,
    /// PEM client certificate.
    #[arg(long, value_name = "PEM")]
    tls_cert_file: Option<PathBuf>,
    /// PEM private key of --tls-cert-file.
    #[arg(long, value_name = "PEM")]
    tls_key_file: Option<PathBuf>,
    /// Also store SPATE_SASL_PASSWORD and SPATE_REGISTRY_PASSWORD in the file (in clear;
    /// the file is readable by its owner only).
    #[arg(long)]
    save_passwords: bool,
    /// Replace a profile of that name.
    #[arg(long)]
    overwrite: bool,
}

fn absolute(path: Option<PathBuf>) -> anyhow::Result<Option<PathBuf>> {
    path.map(|p| std::path::absolute(&p).with_context(|| format!("cannot resolve {}", p.display())))
        .transpose()
}

impl CreateArgs {
    fn profile(self) -> anyhow::Result<Profile> {
        let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let (sasl_password, registry_password) = if self.save_passwords {
            let sasl = env("SPATE_SASL_PASSWORD");
            let registry = env("SPATE_REGISTRY_PASSWORD");
            if sasl.is_none() && registry.is_none() {
                bail!(
                    "--save-passwords stores SPATE_SASL_PASSWORD and SPATE_REGISTRY_PASSWORD, but \
                     neither is set"
                );
            }
            (sasl.filter(|_| self.sasl_username.is_some()), registry)
        } else {
            (None, None)
        };
        for broker in &self.brokers {
            spate_client::client::validate_broker_address(broker.trim())?;
        }
        Ok(Profile {
            brokers: self.brokers.iter().map(|b| b.trim().to_string()).collect(),
            registry: self.registry,
            registry_user: self.registry_user,
            registry_password,
            security_protocol: self.security_protocol.map(|p| p.to_string()),
            sasl_mechanism: self.sasl_mechanism.map(|m| m.name().to_string()),
            sasl_username: self.sasl_username,
            sasl_password,
            // Relative paths would change meaning with the working directory.
            tls_ca_file: absolute(self.tls_ca_file)?,
            tls_cert_file: absolute(self.tls_cert_file)?,
            tls_key_file: absolute(self.tls_key_file)?,
        })
    }
}

/// The profile as `current` prints it: every setting, passwords as `(saved)`.
fn describe(name: &str, profile: &Profile) -> String {
    let mut out = format!("profile: {name}\n");
    let mut line = |key: &str, value: Option<String>| {
        if let Some(value) = value {
            out.push_str(&format!("{key}: {value}\n"));
        }
    };
    line(
        "brokers",
        (!profile.brokers.is_empty()).then(|| profile.brokers.join(",")),
    );
    line("registry", profile.registry.clone());
    line("registry-user", profile.registry_user.clone());
    line(
        "registry-password",
        profile
            .registry_password
            .as_ref()
            .map(|_| "(saved)".to_string()),
    );
    line("security-protocol", profile.security_protocol.clone());
    line("sasl-mechanism", profile.sasl_mechanism.clone());
    line("sasl-username", profile.sasl_username.clone());
    line(
        "sasl-password",
        profile
            .sasl_password
            .as_ref()
            .map(|_| "(saved)".to_string()),
    );
    for (key, path) in [
        ("tls-ca-file", &profile.tls_ca_file),
        ("tls-cert-file", &profile.tls_cert_file),
        ("tls-key-file", &profile.tls_key_file),
    ] {
        line(key, path.as_ref().map(|p| p.display().to_string()));
    }
    out
}

/// Runs `spate profile`.
pub fn run(args: ProfileArgs) -> anyhow::Result<()> {
    let path = file_path()?;
    let mut file = ProfileFile::load(&path)?;
    match args.command {
        ProfileCommand::Create(create) => {
            let name = create.name.clone();
            if name.trim().is_empty() {
                bail!("a profile needs a name");
            }
            if file.profiles.contains_key(&name) && !create.overwrite {
                bail!("profile {name:?} exists; delete it first or pass --overwrite");
            }
            let profile = create.profile()?;
            file.profiles.insert(name.clone(), profile);
            file.current = Some(name.clone());
            file.save(&path)?;
            eprintln!(
                "created profile {name} in {} and made it current",
                path.display()
            );
        }
        ProfileCommand::Use(NameArg { name }) => {
            if !file.profiles.contains_key(&name) {
                bail!("no profile named {name:?} in {}", path.display());
            }
            file.current = Some(name.clone());
            file.save(&path)?;
            eprintln!("using profile {name}");
        }
        ProfileCommand::List => {
            let mut out = String::new();
            for name in file.profiles.keys() {
                let mark = if file.current.as_deref() == Some(name) {
                    "*"
                } else {
                    " "
                };
                out.push_str(&format!("{mark} {name}\n"));
            }
            print(&out)?;
        }
        ProfileCommand::Delete(NameArg { name }) => {
            if file.profiles.remove(&name).is_none() {
                bail!("no profile named {name:?} in {}", path.display());
            }
            if file.current.as_deref() == Some(name.as_str()) {
                file.current = None;
            }
            file.save(&path)?;
            eprintln!("deleted profile {name}");
        }
        ProfileCommand::Current => match active()? {
            Some((name, profile)) => print(&describe(&name, &profile))?,
            None => bail!(
                "no current profile; create one with `spate profile create` ({})",
                path.display()
            ),
        },
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profiles_round_trip_through_toml_with_kebab_case_keys() {
        let mut file = ProfileFile {
            current: Some("prod".to_string()),
            ..ProfileFile::default()
        };
        file.profiles.insert(
            "prod".to_string(),
            Profile {
                brokers: vec!["b1:9092".to_string(), "b2:9092".to_string()],
                registry: Some("https://sr:8081".to_string()),
                security_protocol: Some("SASL_SSL".to_string()),
                sasl_username: Some("alice".to_string()),
                ..Profile::default()
            },
        );
        let text = toml::to_string_pretty(&file).expect("toml");
        assert!(text.contains("security-protocol = \"SASL_SSL\""), "{text}");
        assert!(
            !text.contains("password"),
            "no password unless saved: {text}"
        );
        let back: ProfileFile = toml::from_str(&text).expect("parse");
        assert_eq!(back, file);
        assert!(toml::from_str::<ProfileFile>("[profiles.x]\nbrokerz = []\n").is_err());
    }

    #[test]
    fn the_file_is_private_and_replaced_atomically() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("spate").join("profiles.toml");
        let mut file = ProfileFile::default();
        file.profiles.insert("a".to_string(), Profile::default());
        file.save(&path).expect("save");
        let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(ProfileFile::load(&path).expect("load"), file);
        assert_eq!(
            ProfileFile::load(&dir.path().join("missing.toml")).expect("load"),
            ProfileFile::default()
        );
    }

    #[test]
    fn current_shows_settings_but_not_passwords() {
        let text = describe(
            "p",
            &Profile {
                brokers: vec!["h:1".to_string()],
                sasl_password: Some("secret".to_string()),
                ..Profile::default()
            },
        );
        assert!(text.contains("brokers: h:1"), "{text}");
        assert!(text.contains("sasl-password: (saved)"), "{text}");
        assert!(!text.contains("secret"), "{text}");
    }
}
