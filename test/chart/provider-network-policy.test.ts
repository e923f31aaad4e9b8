import { find, renderError, renderScenario, scenarioFile, type K8sObject, type Scenario } from './helm';

/**
 * The worker sends every reply to config.WHATSAPP_GRAPH_API_URL or config.TWILIO_API_URL, and its
 * NetworkPolicy lets out only networkPolicy.providers.ports (and extraEgress): a URL on another
 * port would have every reply dropped and dead-lettered, so the render refuses it instead.
 */
describe('the NetworkPolicy against the provider URLs the worker replies to', () => {
  const refused = (set: string[], scenario: Scenario = 'minimal') => renderError({ valuesFiles: [scenarioFile(scenario)], set });
  const workerEgressPorts = (objects: K8sObject[]) =>
    find(objects, 'NetworkPolicy', '-worker').spec.egress.flatMap((rule: { ports?: { port: number }[] }) => (rule.ports ?? []).map((p) => p.port));

  it('refuses a provider URL whose port the worker\'s policy would not let out, naming the value to set', () => {
    expect(refused(['config.WHATSAPP_GRAPH_API_URL=http://egress-proxy:3128/'])).toContain(
      'config.WHATSAPP_GRAPH_API_URL connects to port 3128, but networkPolicy.providers.ports is [443] and no networkPolicy.extraEgress rule lets it out: add 3128 to networkPolicy.providers.ports',
    );
    expect(refused(['config.TWILIO_API_URL=https://gateway:8443'])).toContain('config.TWILIO_API_URL connects to port 8443, but networkPolicy.providers.ports is [443]');
    // The port from the scheme, past an IPv6 literal or a user and password.
    expect(refused(['config.TWILIO_API_URL=http://gateway/2010-04-01'])).toContain('config.TWILIO_API_URL connects to port 80');
    expect(refused(['config.WHATSAPP_GRAPH_API_URL=https://[fd00::7]:8443/'])).toContain('config.WHATSAPP_GRAPH_API_URL connects to port 8443');
    expect(refused(['config.WHATSAPP_GRAPH_API_URL=https://user:p@ss@gateway:8443'])).toContain('config.WHATSAPP_GRAPH_API_URL connects to port 8443');
    // An extraEgress rule for UDP lets no TCP connection out.
    expect(refused(['config.TWILIO_API_URL=https://gateway:8443', 'networkPolicy.extraEgress[0].ports[0].port=8443', 'networkPolicy.extraEgress[0].ports[0].protocol=UDP'])).toContain(
      'config.TWILIO_API_URL connects to port 8443',
    );
  });

  it('refuses an unset URL, the provider\'s own on 443, for a provider the release replies through when the policy lets out only other ports', () => {
    const proxyOnly = ['networkPolicy.providers.ports={3128}'];
    expect(refused(proxyOnly)).toContain('config.WHATSAPP_GRAPH_API_URL (unset: https://graph.facebook.com) connects to port 443, but networkPolicy.providers.ports is [3128]');
    expect(refused(proxyOnly, 'keda')).toContain('config.TWILIO_API_URL (unset: https://api.twilio.com) connects to port 443, but networkPolicy.providers.ports is [3128]');
  });

  it('renders a URL whose port the provider rule or an extraEgress rule lets out, and leaves alone a release without policies', () => {
    const proxied = renderScenario('minimal', { set: ['config.WHATSAPP_GRAPH_API_URL=http://egress-proxy:3128/', 'networkPolicy.providers.ports={3128}'] });
    expect(workerEgressPorts(proxied)).toContain(3128);
    const ipv6 = renderScenario('minimal', { set: ['config.WHATSAPP_GRAPH_API_URL=https://[fd00::7]:8443/', 'networkPolicy.providers.ports={443,8443}'] });
    expect(workerEgressPorts(ipv6)).toEqual(expect.arrayContaining([443, 8443]));
    for (const set of [
      ['config.TWILIO_API_URL=https://user:pw@gateway'],
      ['config.TWILIO_API_URL=http://gateway', 'networkPolicy.providers.ports={443,80}'],
      ['config.TWILIO_API_URL=https://gateway:8443', 'networkPolicy.extraEgress[0].ports[0].port=8443'],
      ['config.TWILIO_API_URL=https://gateway:8443', 'networkPolicy.extraEgress[0].ports[0].port=8000', 'networkPolicy.extraEgress[0].ports[0].endPort=8999'],
      ['config.TWILIO_API_URL=https://gateway:8443', 'networkPolicy.extraEgress[0].to[0].ipBlock.cidr=10.9.0.7/32'],
      ['config.TWILIO_API_URL=https://gateway:8443', 'networkPolicy.enabled=false'],
    ]) {
      expect(renderScenario('minimal', { set }).length).toBeGreaterThan(0);
    }
  });

  it('leaves unchecked the unset URL of a provider the release does not reply through, and a URL that an extraEnv sets', () => {
    // Twilio only: Meta's default URL is never called.
    const twilioOnly = renderScenario('keda', { set: ['config.TWILIO_API_URL=http://egress-proxy:3128', 'networkPolicy.providers.ports={3128}'] });
    expect(workerEgressPorts(twilioOnly)).toContain(3128);
    // The chart cannot tell which URL an extraEnv gives the worker, nor read one from a Secret.
    const fromExtraEnv = renderScenario('minimal', { set: ['worker.extraEnv[0].name=WHATSAPP_GRAPH_API_URL', 'worker.extraEnv[0].value=http://egress-proxy:3128', 'networkPolicy.providers.ports={3128}'] });
    expect(workerEgressPorts(fromExtraEnv)).toContain(3128);
  });
});
