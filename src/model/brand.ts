declare const brand: unique symbol;

/** A string that passed its grammar: only the grammar's parser makes one. */
export type Brand<T, B extends string> = T & { readonly [brand]: B };
