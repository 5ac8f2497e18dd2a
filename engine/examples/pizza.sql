CREATE TABLE pizza_sales (
  id integer NOT NULL,
  date date NOT NULL,
  "time" time without time zone NOT NULL,
  name text NOT NULL, -- values: 'big_meat', 'thai_ckn', 'five_cheese', 'four_cheese', 'classic_dlx'
  size text NOT NULL, -- values: 'L', 'M', 'S', 'XL', 'XXL'
  type text NOT NULL, -- values: 'classic', 'supreme', 'veggie', 'chicken'
  price numeric NOT NULL
);
