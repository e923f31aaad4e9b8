/** Polls until check returns a truthy value; fails with the description after timeoutMs. */
type Maybe<T> = T | null | undefined | false;

export async function waitFor<T>(description: string, check: () => Promise<Maybe<T>> | Maybe<T>, timeoutMs = 15000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value) return value;
    } catch (error) {
      lastError = error;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${description}${lastError ? `: ${(lastError as Error).message}` : ''}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}
