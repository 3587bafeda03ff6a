module github.com/stampede-shop/stampede/services/order

go 1.26.0


