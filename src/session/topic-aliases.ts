// v5 Topic Alias resolution for client → gateway PUBLISH [MQTT-3.3.2.3.4]. The gateway resolves aliases
// itself and always sends full topics upstream, so the broker never needs to know them.

/** How many aliases the gateway accepts from each client (advertised in CONNACK). */
export const TOPIC_ALIAS_MAXIMUM = 64

export class TopicAliases {
  private readonly topics = new Map<number, string>()
  constructor(readonly max: number = TOPIC_ALIAS_MAXIMUM) {}

  /** Whether `alias` is in the range the gateway advertised. */
  inRange(alias: number): boolean {
    return Number.isInteger(alias) && alias >= 1 && alias <= this.max
  }

  put(alias: number, topic: string): boolean {
    if (!this.inRange(alias)) return false
    this.topics.set(alias, topic)
    return true
  }

  get(alias: number): string | undefined {
    return this.topics.get(alias)
  }

  clear(): void {
    this.topics.clear()
  }
}
