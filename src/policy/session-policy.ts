// The limits a session lives under once admitted (SPEC §7). The session calls these few hooks; what
// they count and when they throttle is the policy's business, so the limiter can change (e.g. a Redis
// limiter shared by a cluster) without touching the packet path.
import type { Session } from '../session/session.js'

export interface SessionPolicy {
  /** one PUBLISH accepted from the client (hot path: keep it a counter increment) */
  countPublish (): void
  /** after each chunk read from the client: rate and bandwidth accounting; may pause/resume reads */
  afterClientChunk (session: Session, bytes: number): void
  /** how many of `requested` new subscriptions this client may add now (0 = refuse all) */
  subscriptionRoom (session: Session, requested: number): number
  /** subscriptions the broker granted (+) or the client removed (−) */
  subscriptionsChanged (session: Session, delta: number): void
}

/** The policy of a session with no rate or subscription limits. */
export const UNLIMITED: SessionPolicy = {
  countPublish () {},
  afterClientChunk () {},
  subscriptionRoom (_s, requested) { return requested },
  subscriptionsChanged () {},
}
