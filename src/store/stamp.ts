/** The owner a write is stamped with: a node and the placement epoch of its ownership (the placement
 * layer's `Fence`). A write carrying an older epoch than the one recorded changes nothing. */
export interface OwnerStamp {
  node: string;
  epoch: number;
}
