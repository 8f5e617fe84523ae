// What the layer server's address takes from the command line.

/** --layer-address HOST[:PORT]: where Clair can reach this machine to fetch layers. */
export interface LayerAddress {
  host: string;
  port?: number;
}

export interface LayerBindingSettings {
  /** undefined: the address is chosen from the route to Clair (see advertise). */
  layerAddress?: LayerAddress;
}
