// Clients across the cluster: a tenant's client list gathered from every gateway, a kick executed
// wherever the client is, and session takeover across gateways (the same tenant and client ID
// connecting through another gateway: the one holding it tells its client 0x8E, Session taken over).
//
// Nothing is written per connection: a request is published to every gateway (PUBLISH answers how many
// received it), each answers on the asker's own channel, and the asker waits for that many answers,
// bounded by `timeoutMs` (a gateway that dies mid-request costs the wait, not the answer of the others).
import { randomUUID } from 'node:crypto'
import type { ClientInfo } from '../admin/client-info.js'
import { perTurn } from './per-turn.js'
import type { ClusterRedis } from './redis.js'

/** What a gateway does for the registry: the Gateway's own clients() and kick(), and the takeover. */
export interface LocalClients {
  clients(tenant: string): ClientInfo[]
  /** how many sessions it ended (v5: DISCONNECT 0x98) */
  kick(tenant: string, clientId: string): number
  /**
   * The tenant's client ID was taken by a CONNECT through gateway `by`: end the local session, v5 clients
   * with DISCONNECT 0x8E, not as "upstream lost" (the broker drops its upstream connection too).
   */
  takenOver(tenant: string, clientId: string, by: string): void
}

export type ClusterClient = ClientInfo & { gateway: string }

export interface ClusterRegistry {
  /** GET /tenants/X/clients: every gateway's clients of the tenant, each with its gateway's name */
  list(tenant: string): Promise<ClusterClient[]>
  /** a kick wherever the client is connected; how many sessions were ended cluster-wide */
  kick(tenant: string, clientId: string): Promise<number>
  /**
   * At CONNECT, once admitted and before dialing the broker: tells the other gateways this client ID is
   * here now. Resolves when Redis has handed the news to them, so they learn it before the broker
   * drops their upstream connection (which happens only once this gateway's CONNECT reaches it).
   */
  claim(tenant: string, clientId: string): Promise<void>
  /** resolves once this gateway hears requests */
  readonly subscribed: Promise<void>
  close(): Promise<void>
}

type Request =
  | { op: 'list'; id: string; from: string; tenant: string }
  | { op: 'kick'; id: string; from: string; tenant: string; clientId: string }
  // the client IDs (tenant, client ID) claimed by CONNECTs of one turn on gateway `from`
  | { op: 'claims'; from: string; claims: Array<[string, string]> }
type Reply = { id: string; from: string; clients?: ClientInfo[]; kicked?: number }

export function redisRegistry(
  redis: ClusterRedis,
  gateway: string,
  local: LocalClients,
  timeoutMs = 1000,
): ClusterRegistry {
  const REQUESTS = `${redis.channelPrefix}registry`
  const repliesTo = (name: string): string => `${redis.channelPrefix}registry:reply:${name}`
  const waiting = new Map<string, (reply: Reply) => void>()
  const onMessage = (channel: string, message: string): void => {
    let msg: unknown
    try {
      msg = JSON.parse(message)
    } catch {
      return
    }
    if (channel === REQUESTS) answer(msg as Request)
    else if (channel === repliesTo(gateway)) {
      const reply = msg as Reply
      waiting.get(reply.id)?.(reply)
    }
  }
  /** This gateway's answer to a list or a kick; undefined for anything else. */
  const localReply = (req: Request): Reply | undefined => {
    if (req.op === 'list') return { id: req.id, from: gateway, clients: local.clients(req.tenant) }
    if (req.op === 'kick') return { id: req.id, from: gateway, kicked: local.kick(req.tenant, req.clientId) }
    return undefined
  }
  const answer = (req: Request): void => {
    if (req.op === 'claims') {
      if (req.from !== gateway) for (const [tenant, clientId] of req.claims) local.takenOver(tenant, clientId, req.from)
      return
    }
    // A request this gateway does not know (a newer one's) is not answered.
    const reply = localReply(req)
    if (reply !== undefined) void redis.commands.publish(repliesTo(req.from), JSON.stringify(reply)).catch(() => 0)
  }
  redis.subscriber.on('message', onMessage)
  const subscribed = redis.subscriber.subscribe(REQUESTS, repliesTo(gateway)).then(
    () => {},
    () => {},
  )

  /** Publishes a request and gathers the answers; Redis unreachable: this gateway's answer alone. */
  const ask = async (req: Request & { id: string }): Promise<Reply[]> => {
    const replies: Reply[] = []
    let expected = Number.POSITIVE_INFINITY
    let done!: () => void
    const finished = new Promise<void>((resolve) => {
      done = resolve
    })
    waiting.set(req.id, (reply) => {
      replies.push(reply)
      if (replies.length >= expected) done()
    })
    const timer = setTimeout(() => done(), timeoutMs)
    try {
      expected = await redis.commands.publish(REQUESTS, JSON.stringify(req))
      if (replies.length >= expected) done()
      await finished
      return replies
    } catch {
      answerLocally(req, replies)
      return replies
    } finally {
      clearTimeout(timer)
      waiting.delete(req.id)
    }
  }
  const answerLocally = (req: Request & { id: string }, into: Reply[]): void => {
    into.length = 0
    const reply = localReply(req)
    if (reply !== undefined) into.push(reply)
  }

  // The claims of one turn's CONNECTs in one PUBLISH (see per-turn.ts). Unreachable Redis: the connections
  // go on; the gateway that held a client ID sees its upstream dropped instead.
  const announce = perTurn<[string, string], void>(async (claims) => {
    const req: Request = { op: 'claims', from: gateway, claims }
    await redis.commands.publish(REQUESTS, JSON.stringify(req)).catch(() => 0)
    return claims.map(() => undefined)
  })

  return {
    subscribed,
    async list(tenant) {
      const replies = await ask({ op: 'list', id: randomUUID(), from: gateway, tenant })
      return replies.flatMap((r) => (r.clients ?? []).map((c) => ({ ...c, gateway: r.from })))
    },
    async kick(tenant, clientId) {
      const replies = await ask({ op: 'kick', id: randomUUID(), from: gateway, tenant, clientId })
      return replies.reduce((n, r) => n + (r.kicked ?? 0), 0)
    },
    async claim(tenant, clientId) {
      await announce([tenant, clientId])
    },
    async close() {
      redis.subscriber.off('message', onMessage)
      await redis.subscriber.unsubscribe(REQUESTS, repliesTo(gateway)).catch(() => {})
    },
  }
}
