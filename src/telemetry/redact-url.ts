/** A URL for a log line: any password in it replaced by ***. */
export function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    // Without a host ("user:secret@host:5672", the scheme left out) the password is not where
    // the parser looks for it: print nothing of such a URL.
    if (!parsed.hostname) return '(url without a host)';
    if (parsed.password) parsed.password = '***';
    return parsed.toString();
  } catch {
    return '(unparseable url)';
  }
}
