//! A test PKI made with rcgen: a CA, server and client certificates in PEM, written to a
//! temporary directory, and rustls client configurations that trust it.

use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls_pki_types::pem::PemObject;

pub struct Ca {
    pub issuer: Issuer<'static, KeyPair>,
    pub pem: String,
}

pub fn ca(name: &str) -> Ca {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let key = KeyPair::generate().unwrap();
    let pem = params.self_signed(&key).unwrap().pem();
    Ca {
        issuer: Issuer::new(params, key),
        pem,
    }
}

/// (certificate PEM, key PEM) for a server (`localhost`) or a client.
pub fn leaf(ca: &Ca, common_name: &str, client: bool) -> (String, String) {
    let mut params = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    params
        .distinguished_name
        .push(DnType::OrganizationName, "sluice tests");
    params.extended_key_usages = vec![if client {
        ExtendedKeyUsagePurpose::ClientAuth
    } else {
        ExtendedKeyUsagePurpose::ServerAuth
    }];
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, &ca.issuer).unwrap();
    (cert.pem(), key.serialize_pem())
}

pub struct Pki {
    pub ca: Ca,
    pub dir: tempfile::TempDir,
}

impl Pki {
    pub fn new() -> Pki {
        let pki = Pki {
            ca: ca("sluice test CA"),
            dir: tempfile::tempdir().unwrap(),
        };
        pki.write_server("sluice-server-1");
        std::fs::write(pki.path("ca.pem"), &pki.ca.pem).unwrap();
        pki
    }

    pub fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }

    pub fn write_server(&self, common_name: &str) {
        let (cert, key) = leaf(&self.ca, common_name, false);
        // Key first, certificate last: a reload that sees the new certificate also sees
        // its key.
        std::fs::write(self.path("server.key"), key).unwrap();
        std::fs::write(self.path("server.pem"), cert).unwrap();
    }

    pub fn listener(&self, mtls: bool, extra: &str) -> String {
        format!(
            "[[listener]]\nname = \"tls\"\ntransport = \"tls\"\naddress = \"127.0.0.1:0\"\n\n[listener.tls]\ncert = \"{}\"\nkey = \"{}\"\n{}{extra}\n",
            self.path("server.pem"),
            self.path("server.key"),
            if mtls {
                format!("client_ca = \"{}\"\n", self.path("ca.pem"))
            } else {
                String::new()
            }
        )
    }
}

pub fn client_config(
    trust: &Ca,
    identity: Option<(String, String)>,
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(trust.pem.as_bytes()).unwrap())
        .unwrap();
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        sluice::source::tls::crypto_provider(),
    ))
    .with_protocol_versions(versions)
    .unwrap()
    .with_root_certificates(roots);
    Arc::new(match identity {
        Some((cert, key)) => builder
            .with_client_auth_cert(
                vec![CertificateDer::from_pem_slice(cert.as_bytes()).unwrap()],
                PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap(),
            )
            .unwrap(),
        None => builder.with_no_client_auth(),
    })
}
