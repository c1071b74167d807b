/** Kubernetes Events about Hubs, Tenants and Branches: what `kubectl describe` shows. */
import type { Logger } from 'pino';
import { EVENTS, type Api, type KubeObject } from '../kube/resources.js';
import { rfc3339 } from '../policy/conditions.js';

export type EventType = 'Normal' | 'Warning';

export interface EventSink {
  record(obj: KubeObject, type: EventType, reason: string, message: string): void;
}

const COMPONENT = 'hub-broker-operator';

export class EventRecorder implements EventSink {
  constructor(
    private readonly api: Api,
    private readonly identity: string,
    private readonly log: Logger,
  ) {}

  /** Fire and forget: a lost Event must never fail or delay a reconcile. */
  record(obj: KubeObject, type: EventType, reason: string, message: string): void {
    const now = rfc3339(new Date());
    const event = {
      apiVersion: 'v1',
      kind: 'Event',
      metadata: { generateName: `${obj.metadata.name ?? 'object'}.`, namespace: obj.metadata.namespace },
      involvedObject: {
        apiVersion: obj.apiVersion,
        kind: obj.kind,
        name: obj.metadata.name,
        namespace: obj.metadata.namespace,
        uid: obj.metadata.uid,
        resourceVersion: obj.metadata.resourceVersion,
      },
      type,
      reason,
      message: message.slice(0, 1024),
      source: { component: COMPONENT },
      reportingComponent: COMPONENT,
      reportingInstance: this.identity,
      firstTimestamp: now,
      lastTimestamp: now,
      count: 1,
    };
    this.api.create(EVENTS, event as KubeObject).catch((err: unknown) => {
      this.log.warn({ err: (err as Error).message, reason }, 'could not record an event');
    });
  }
}
