CREATE TABLE customers (
  id integer NOT NULL,
  name text NOT NULL,
  email text,
  country text NOT NULL, -- values: 'US', 'DE', 'FR', 'GB', 'JP'
  signed_up date NOT NULL,
  PRIMARY KEY (id)
);

CREATE TABLE products (
  id integer NOT NULL,
  name text NOT NULL,
  category text NOT NULL, -- values: 'books', 'games', 'music', 'toys'
  unit_price numeric(10,2) NOT NULL,
  PRIMARY KEY (id)
);

CREATE TABLE orders (
  id bigint NOT NULL,
  customer_id integer NOT NULL,
  ordered_at timestamp with time zone NOT NULL,
  status text NOT NULL, -- values: 'shipped', 'pending', 'cancelled', 'returned'
  PRIMARY KEY (id),
  FOREIGN KEY (customer_id) REFERENCES customers(id)
);

CREATE TABLE order_items (
  order_id bigint NOT NULL,
  product_id integer NOT NULL,
  quantity integer NOT NULL,
  unit_price numeric(10,2) NOT NULL, -- price at the time of the order
  PRIMARY KEY (order_id, product_id),
  FOREIGN KEY (order_id) REFERENCES orders(id),
  FOREIGN KEY (product_id) REFERENCES products(id)
);
