//! WireGuard keys as they appear in the configuration, and the private key file check that
//! `weft run` needs before it may start.

use std::fmt;
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Serialize, Serializer};
use zeroize::Zeroizing;

/// A WireGuard (Curve25519) public key.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PublicKey([u8; 32]);

/// Why a key string is not a key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// Not base64 at all.
    #[error("is not base64")]
    NotBase64,
    /// Base64 of the wrong length.
    #[error("decodes to {0} bytes, not 32")]
    WrongLength(usize),
}

fn decode_key(text: &str) -> Result<[u8; 32], KeyError> {
    let bytes = Zeroizing::new(
        STANDARD
            .decode(text.trim())
            .map_err(|_| KeyError::NotBase64)?,
    );
    <[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| KeyError::WrongLength(bytes.len()))
}

impl PublicKey {
    /// Parses the base64 form `wg` and `weft keygen` print.
    pub fn parse(text: &str) -> Result<Self, KeyError> {
        decode_key(text).map(Self)
    }

    /// The raw 32 bytes, as the WireGuard implementation wants them.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The public key belonging to a private key.
    pub fn from_private(private: &PrivateKey) -> Self {
        let secret = x25519_dalek::StaticSecret::from(*private.0);
        Self(x25519_dalek::PublicKey::from(&secret).to_bytes())
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&STANDARD.encode(self.0))
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({self})")
    }
}

impl Serialize for PublicKey {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A WireGuard private key. Its bytes are wiped on drop and never printed.
#[derive(Clone)]
pub struct PrivateKey(Zeroizing<[u8; 32]>);

impl PrivateKey {
    /// Parses the base64 form.
    pub fn parse(text: &str) -> Result<Self, KeyError> {
        decode_key(text).map(|k| Self(Zeroizing::new(k)))
    }

    /// A fresh key from the operating system's random source.
    pub fn generate() -> Result<Self, getrandom::Error> {
        let mut bytes = Zeroizing::new([0u8; 32]);
        getrandom::fill(bytes.as_mut())?;
        Ok(Self(bytes))
    }

    /// Wraps 32 random bytes (clamping happens in the key exchange itself).
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(Zeroizing::new(bytes))
    }

    /// The raw bytes, for the WireGuard implementation.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The base64 form, for writing a key file.
    pub fn to_base64(&self) -> Zeroizing<String> {
        Zeroizing::new(STANDARD.encode(*self.0))
    }
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PrivateKey(<redacted>)")
    }
}

/// Why a gateway's private key file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// Others than the owner may read or write it.
    #[error("{path} has mode {mode:04o}; a private key file must be 0600 (or stricter)")]
    TooOpen {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The content is not a key.
    #[error("{path} does not hold a WireGuard private key: it {reason}")]
    NotAKey {
        /// The file.
        path: PathBuf,
        /// What is wrong with the content.
        reason: KeyError,
    },
    /// The key does not belong to the configured public key.
    #[error("the key in {path} belongs to public key {actual}, not to the configured {configured}")]
    Mismatch {
        /// The file.
        path: PathBuf,
        /// The public key of the private key in the file.
        actual: PublicKey,
        /// The public key in the configuration.
        configured: PublicKey,
    },
}

/// Reads a private key file, insisting on mode 0600 or stricter and on the key matching the
/// configured public key.
pub fn read_private_key(path: &Path, expected: &PublicKey) -> Result<PrivateKey, KeyFileError> {
    use std::os::unix::fs::PermissionsExt;
    let unreadable = |source| KeyFileError::Unreadable {
        path: path.to_owned(),
        source,
    };
    let mode = std::fs::metadata(path)
        .map_err(unreadable)?
        .permissions()
        .mode()
        & 0o777;
    if mode & 0o077 != 0 {
        return Err(KeyFileError::TooOpen {
            path: path.to_owned(),
            mode,
        });
    }
    let text = Zeroizing::new(std::fs::read_to_string(path).map_err(unreadable)?);
    let key = PrivateKey::parse(&text).map_err(|reason| KeyFileError::NotAKey {
        path: path.to_owned(),
        reason,
    })?;
    let actual = PublicKey::from_private(&key);
    if actual != *expected {
        return Err(KeyFileError::Mismatch {
            path: path.to_owned(),
            actual,
            configured: *expected,
        });
    }
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_keys() {
        let text = "HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykw=";
        let key = PublicKey::parse(text).unwrap();
        assert_eq!(key.to_string(), text);
        assert_eq!(PublicKey::parse("abc"), Err(KeyError::NotBase64));
        assert_eq!(PublicKey::parse("AAAA"), Err(KeyError::WrongLength(3)));
    }

    #[test]
    fn private_key_debug_is_redacted() {
        let key = PrivateKey::from_bytes([7; 32]);
        assert_eq!(format!("{key:?}"), "PrivateKey(<redacted>)");
    }

    #[test]
    fn derives_public_key_like_wireguard() {
        // RFC 7748 section 6.1 test vector (Alice).
        let private = PrivateKey::from_bytes([
            0x77, 0x07, 0x6d, 0x0a, 0x73, 0x18, 0xa5, 0x7d, 0x3c, 0x16, 0xc1, 0x72, 0x51, 0xb2,
            0x66, 0x45, 0xdf, 0x4c, 0x2f, 0x87, 0xeb, 0xc0, 0x99, 0x2a, 0xb1, 0x77, 0xfb, 0xa5,
            0x1d, 0xb9, 0x2c, 0x2a,
        ]);
        let public = PublicKey::from_private(&private);
        assert_eq!(
            public.as_bytes()[..4],
            [0x85, 0x20, 0xf0, 0x09],
            "public key of RFC 7748 Alice"
        );
    }

    #[test]
    fn key_file_checks() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        let private = PrivateKey::from_bytes([9; 32]);
        let public = PublicKey::from_private(&private);
        std::fs::write(&path, private.to_base64().as_bytes()).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(
            read_private_key(&path, &public),
            Err(KeyFileError::TooOpen { mode: 0o644, .. })
        ));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(
            read_private_key(&path, &public).unwrap().as_bytes(),
            private.as_bytes()
        );
        let other = PublicKey::from_private(&PrivateKey::from_bytes([1; 32]));
        assert!(matches!(
            read_private_key(&path, &other),
            Err(KeyFileError::Mismatch { .. })
        ));
        std::fs::write(&path, "not a key").unwrap();
        assert!(matches!(
            read_private_key(&path, &public),
            Err(KeyFileError::NotAKey { .. })
        ));
        assert!(matches!(
            read_private_key(&dir.path().join("missing"), &public),
            Err(KeyFileError::Unreadable { .. })
        ));
    }
}
