// The `WWW-Authenticate` challenge of a registry's 401 (RFC 7235): `Bearer realm="…",service="…",scope="…"` (the
// distribution token flow) or `Basic realm="…"`. Parameter values may be quoted strings with backslash escapes.

export interface Challenge {
  scheme: 'bearer' | 'basic';
  params: Record<string, string>;
}

/** The first Bearer or Basic challenge in the header's value(s); undefined when there is none. */
export function parseChallenge(header: string | string[] | undefined): Challenge | undefined {
  for (const value of Array.isArray(header) ? header : header === undefined ? [] : [header]) {
    for (const challenge of challenges(value)) {
      const scheme = challenge.scheme.toLowerCase();
      if (scheme === 'bearer' || scheme === 'basic') return { scheme, params: challenge.params };
    }
  }
  return undefined;
}

function* challenges(value: string): Generator<{ scheme: string; params: Record<string, string> }> {
  let i = 0;
  const space = () => {
    while (i < value.length && /[\s,]/.test(value[i] as string)) i++;
  };
  while (i < value.length) {
    space();
    const scheme = /^[A-Za-z][\w!#$%&'*+.^`|~-]*/.exec(value.slice(i))?.[0];
    if (!scheme) return;
    i += scheme.length;
    const params: Record<string, string> = {};
    for (;;) {
      space();
      const name = /^([\w!#$%&'*+.^`|~-]+)\s*=\s*/.exec(value.slice(i));
      if (!name) break;
      i += name[0].length;
      params[(name[1] as string).toLowerCase()] = readValue();
    }
    yield { scheme, params };
  }

  function readValue(): string {
    if (value[i] !== '"') {
      const token = /^[^\s,]*/.exec(value.slice(i))?.[0] ?? '';
      i += token.length;
      return token;
    }
    let out = '';
    for (i++; i < value.length && value[i] !== '"'; i++) out += value[i] === '\\' ? (value[++i] ?? '') : value[i];
    i++;
    return out;
  }
}
