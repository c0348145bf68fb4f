//! Static keys from a profile of the AWS shared credentials file, the one link of the
//! standard AWS credential chain that `object_store` does not read itself (it reads the
//! environment, web identity / pod roles, ECS task roles and instance roles).
//! Profiles that assume a role or use SSO are not read; use those through the environment.

use std::path::{Path, PathBuf};

#[derive(Debug, PartialEq, Eq)]
pub struct StaticKeys {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
}

/// AWS_SHARED_CREDENTIALS_FILE, else ~/.aws/credentials.
pub fn credentials_file() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("AWS_SHARED_CREDENTIALS_FILE") {
        return Some(PathBuf::from(path));
    }
    std::env::var_os("HOME").map(|home| Path::new(&home).join(".aws/credentials"))
}

/// The keys of `[profile]` in an INI text.
pub fn profile_keys(text: &str, profile: &str) -> Result<StaticKeys, String> {
    let mut in_profile = false;
    let mut found = false;
    let (mut id, mut secret, mut token) = (None, None, None);
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(section) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            in_profile = section.trim() == profile;
            found |= in_profile;
            continue;
        }
        if !in_profile {
            continue;
        }
        if let Some((key, value)) = line.split_once('=') {
            let value = value.trim().to_string();
            match key.trim().to_ascii_lowercase().as_str() {
                "aws_access_key_id" => id = Some(value),
                "aws_secret_access_key" => secret = Some(value),
                "aws_session_token" => token = Some(value),
                _ => {}
            }
        }
    }
    if !found {
        return Err(format!("no profile [{profile}]"));
    }
    match (id, secret) {
        (Some(access_key_id), Some(secret_access_key)) => Ok(StaticKeys {
            access_key_id,
            secret_access_key,
            session_token: token,
        }),
        _ => Err(format!(
            "profile [{profile}] has no aws_access_key_id and aws_secret_access_key \
             (role and SSO profiles are not read: use AWS_* environment variables or a role)"
        )),
    }
}

/// Reads `profile` from the shared credentials file.
pub fn load_profile(profile: &str) -> Result<StaticKeys, String> {
    let path = credentials_file().ok_or("no credentials file: HOME is not set")?;
    let text = std::fs::read_to_string(&path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    profile_keys(&text, profile).map_err(|e| format!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "[default]\naws_access_key_id = AKIDEFAULT\naws_secret_access_key=s1\n\n\
        # comment\n[siem]\naws_access_key_id = AKISIEM\naws_secret_access_key = s2\n\
        aws_session_token = t2\n[role]\nrole_arn = arn:aws:iam::1:role/r\nsource_profile = default\n";

    #[test]
    fn reads_the_named_profile() {
        let keys = profile_keys(FILE, "siem").unwrap();
        assert_eq!(keys.access_key_id, "AKISIEM");
        assert_eq!(keys.secret_access_key, "s2");
        assert_eq!(keys.session_token.as_deref(), Some("t2"));
        assert_eq!(profile_keys(FILE, "default").unwrap().session_token, None);
    }

    #[test]
    fn says_what_is_missing() {
        assert_eq!(profile_keys(FILE, "nope").unwrap_err(), "no profile [nope]");
        assert!(profile_keys(FILE, "role")
            .unwrap_err()
            .contains("role and SSO profiles are not read"));
    }
}
