import type { Request, Response } from 'express';
import { secureEquals } from './secure-compare';

/** Meta's subscription handshake: echo hub.challenge only for our verify token. */
export function createMetaVerificationHandler(verifyToken: string | undefined) {
  return function verifyMetaSubscription(req: Request, res: Response): void {
    const mode = req.query['hub.mode'];
    const token = req.query['hub.verify_token'];
    const challenge = req.query['hub.challenge'];
    if (
      verifyToken &&
      mode === 'subscribe' &&
      typeof token === 'string' &&
      typeof challenge === 'string' &&
      secureEquals(token, verifyToken)
    ) {
      res.status(200).type('text/plain').send(challenge);
      return;
    }
    res.status(403).type('text/plain').send('verification failed');
  };
}
