/** The URL branch agents use for a Hub (HUB_URL): its publicURL, else its in-cluster Service. */
import type { Hub } from '../api/v1alpha1.js';

export function hubEndpoint(hub: Hub): string {
  if (hub.spec.publicURL) return hub.spec.publicURL.replace(/\/+$/, '');
  const scheme = hub.spec.tls ? 'https' : 'http';
  return `${scheme}://${hub.metadata.name}.${hub.metadata.namespace}.svc:${hub.spec.service.port}`;
}
