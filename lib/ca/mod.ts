/**
 * Key generation, OpenSSH certificates (PROTOCOL.certkeys: sign, parse, verify), SSH
 * signatures, X.509 v3 CA and leaf issuing (@peculiar/x509), and CA pins.
 *
 * ```ts
 * import { generateSshKeyPair, signSshCertificate, verifySshCertificate } from "./mod.ts";
 * const ca = await generateSshKeyPair("ed25519");
 * const user = await generateSshKeyPair("ed25519");
 * const now = new Date();
 * const cert = await signSshCertificate({
 *   signer: ca, publicKeyBlob: user.publicKeyBlob, certType: "user", keyId: "alice",
 *   principals: ["alice"], validAfter: new Date(now.getTime() - 60_000),
 *   validBefore: new Date(now.getTime() + 3_600_000), extensions: { "permit-pty": "" },
 * });
 * await verifySshCertificate(cert.blob, {
 *   trustedCaKeys: [ca.publicKeyBlob], certType: "user", principal: "alice", now,
 * });
 * ```
 *
 * @module
 */
export {
  type AuthorizedKey,
  ECDSA_CURVES,
  type EcdsaCurve,
  type EcdsaKeyType,
  encodeSshPublicKey,
  formatAuthorizedKey,
  formatOpenSshPrivateKey,
  generateSshKeyPair,
  importSshPrivateKey,
  parseAuthorizedKey,
  parseSshPublicKey,
  sshBlobType,
  sshFingerprint,
  type SshKeyAlgorithm,
  type SshKeyPair,
  type SshPublicKey,
  sshPublicKeyBlob,
  type SshPublicKeyType,
} from "./ssh_key.ts";
export {
  isSshCertificateType,
  KNOWN_CRITICAL_OPTIONS,
  parseSshCertificate,
  type SignedSshCertificate,
  signSshCertificate,
  type SignSshCertificateOptions,
  SSH_CERT_TYPES,
  type SshCertificate,
  type SshCertType,
  verifySshCertificate,
  type VerifySshCertificateOptions,
} from "./ssh_cert.ts";
export {
  parseSshSignature,
  signSsh,
  type SshSignature,
  verifySshSignature,
} from "./ssh_signature.ts";
export { type Bytes, bytesEqual, concatBytes, SshReader, SshWriter } from "./ssh_wire.ts";
export {
  createX509Ca,
  type CreateX509CaOptions,
  type ExtKeyUsage,
  generateTlsKeyPair,
  importTlsPrivateKey,
  issueX509Certificate,
  type IssueX509CertificateOptions,
  parseX509Certificate,
  splitPemCertificates,
  type TlsKeyPair,
  verifyX509Certificate,
  type VerifyX509CertificateOptions,
  X509_OIDS,
  type X509Ca,
  type X509CertificateInfo,
  type X509Name,
} from "./x509.ts";
export { caPin, checkCaPins } from "./pin.ts";
